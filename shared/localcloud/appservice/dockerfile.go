package appservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
)

// goBuildPlan is what the build service runs for a Dockerfile: its go build step, natively.
type goBuildPlan struct {
	dir      string   // where go build runs, relative to the context root, slash-separated ("." = the root)
	env      []string // what the step sets that changes the build: CGO_ENABLED, GOFLAGS, GOEXPERIMENT
	flags    []string // go build's flags, without -o
	packages []string
	ignored  []string // Go variables the step sets that would not let the binary run here (GOOS, ...)
}

// buildEnvKept are the variables of the container's build environment that go build honours
// here. GOOS, GOARCH and the like are dropped: the image runs natively on this machine.
var buildEnvKept = []string{"CGO_ENABLED", "GOFLAGS", "GOEXPERIMENT"}

// goBuildValueFlags are go build's flags that take a value ("-o out" as well as "-o=out").
var goBuildValueFlags = map[string]bool{
	"o": true, "p": true, "C": true, "asmflags": true, "buildmode": true, "compiler": true,
	"gccgoflags": true, "gcflags": true, "installsuffix": true, "ldflags": true, "mod": true,
	"modfile": true, "overlay": true, "pgo": true, "pkgdir": true, "tags": true, "toolexec": true,
	"coverpkg": true, "covermode": true,
}

// stage is what the Dockerfile has set up in a build stage so far.
type stage struct {
	workdir string            // container path
	vars    map[string]string // ARG and ENV values: RUN sees both as environment variables
	// srcRoot is where `COPY . <dest>` put the build context, "" if no step did: then the
	// context is taken to be in the WORKDIR of the go build step.
	srcRoot string
}

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	line    int
	keyword string // upper case
	args    string
}

// parseDockerfile finds the Dockerfile's last `RUN ... go build ...` step and works out how to
// run it on the extracted context. It writes Docker's "Step i/n" lines to log, noting what
// happens to each step here.
func parseDockerfile(src string, log io.Writer) (goBuildPlan, error) {
	ins := splitInstructions(src)
	if len(ins) == 0 {
		return goBuildPlan{}, errors.New("the Dockerfile is empty")
	}
	global := map[string]string{} // ARGs before the first FROM
	stages := map[string]*stage{}
	var cur *stage
	var plan *goBuildPlan
	for i, in := range ins {
		fmt.Fprintf(log, "Step %d/%d : %s %s\n", i+1, len(ins), in.keyword, strings.Join(strings.Fields(in.args), " "))
		if cur == nil && in.keyword != "FROM" && in.keyword != "ARG" {
			return goBuildPlan{}, fmt.Errorf("line %d: %s before the first FROM", in.line, in.keyword)
		}
		var words []string
		switch in.keyword {
		case "FROM", "ARG", "ENV", "WORKDIR", "COPY", "ADD":
			lookup := func(k string) string { return global[k] }
			if cur != nil {
				lookup = func(k string) string { return cur.vars[k] }
			}
			var err error
			if words, err = shellWords(in.args, lookup); err != nil {
				return goBuildPlan{}, fmt.Errorf("line %d: %w", in.line, err)
			}
		}
		switch in.keyword {
		case "FROM":
			words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
			if len(words) == 0 {
				return goBuildPlan{}, fmt.Errorf("line %d: FROM needs an image", in.line)
			}
			next := &stage{workdir: "/", vars: map[string]string{}}
			if base, ok := stages[strings.ToLower(words[0])]; ok {
				next = &stage{workdir: base.workdir, vars: maps.Clone(base.vars), srcRoot: base.srcRoot}
			}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				stages[strings.ToLower(words[2])] = next
			}
			cur = next
		case "ARG":
			for _, w := range words {
				name, value, hasDefault := strings.Cut(w, "=")
				if !hasDefault {
					value = global[name]
				}
				if cur == nil {
					global[name] = value
				} else {
					cur.vars[name] = value
				}
			}
		case "ENV":
			if len(words) >= 2 && !strings.Contains(words[0], "=") {
				cur.vars[words[0]] = strings.Join(words[1:], " ") // the legacy form, ENV NAME value
				break
			}
			for _, w := range words {
				if name, value, ok := strings.Cut(w, "="); ok {
					cur.vars[name] = value
				}
			}
		case "WORKDIR":
			if len(words) != 1 {
				return goBuildPlan{}, fmt.Errorf("line %d: WORKDIR takes one path", in.line)
			}
			cur.workdir = resolvePath(cur.workdir, words[0])
		case "COPY", "ADD":
			if src, dest, ok := copyFromContext(in.args, words); ok && slices.ContainsFunc(src, func(s string) bool { return path.Clean(s) == "." }) {
				cur.srcRoot = resolvePath(cur.workdir, dest)
			}
		case "RUN":
			p, found, err := planRun(in.args, cur)
			if err != nil {
				return goBuildPlan{}, fmt.Errorf("line %d: %w", in.line, err)
			}
			if found {
				plan = &p
				fmt.Fprintf(log, " ---> this is the go build step: the local build service runs it natively\n")
			} else {
				fmt.Fprintf(log, " ---> skipped: only the go build step runs here (there is no container engine)\n")
			}
		}
	}
	if plan == nil {
		return goBuildPlan{}, errors.New("no `RUN ... go build ... <package>` step found: the local build service has no container engine and builds only Go programs, by running the Dockerfile's go build step natively")
	}
	return *plan, nil
}

// splitInstructions joins continuation lines (ending in \) and drops comments and blank lines.
func splitInstructions(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	start, cont := 0, false
	flush := func() {
		t := strings.TrimSpace(cur.String())
		kw, args := t, ""
		if i := strings.IndexAny(t, " \t"); i >= 0 {
			kw, args = t[:i], strings.TrimSpace(t[i:])
		}
		out = append(out, instruction{line: start, keyword: strings.ToUpper(kw), args: args})
		cur.Reset()
	}
	for i, l := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") || t == "" {
			continue // comments (and parser directives), and blank lines even inside a continuation
		}
		if !cont {
			start = i + 1
		}
		l = strings.TrimRight(l, " \t")
		if body, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(body)
			cont = true
			continue
		}
		cur.WriteString(l)
		cont = false
		flush()
	}
	if cont {
		flush()
	}
	return out
}

// copyFromContext returns the sources and destination of a COPY or ADD that copies from the
// build context (not --from another stage or image).
func copyFromContext(args string, words []string) (src []string, dest string, ok bool) {
	if strings.HasPrefix(strings.TrimSpace(args), "[") {
		if err := json.Unmarshal([]byte(args), &words); err != nil {
			return nil, "", false
		}
	}
	var paths []string
	for _, w := range words {
		if strings.HasPrefix(w, "--from=") {
			return nil, "", false
		}
		if !strings.HasPrefix(w, "--") {
			paths = append(paths, w)
		}
	}
	if len(paths) < 2 {
		return nil, "", false
	}
	return paths[:len(paths)-1], paths[len(paths)-1], true
}

// resolvePath resolves a container path against a working directory.
func resolvePath(wd, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(wd, p)
}

// planRun looks for go build in a RUN instruction, in its shell form (`RUN a && CGO_ENABLED=0
// go build ...`, with cd and export understood) or its exec form (`RUN ["go", "build", ...]`).
func planRun(args string, st *stage) (goBuildPlan, bool, error) {
	// RUN's own options (--mount=type=cache,..., --network=...) come first.
	for strings.HasPrefix(args, "--") {
		_, rest, _ := strings.Cut(args, " ")
		args = strings.TrimSpace(rest)
	}
	if !strings.Contains(args, "go") || !strings.Contains(args, "build") {
		return goBuildPlan{}, false, nil // not worth reading: any shell is fine in other steps
	}
	var cmds [][]string
	if strings.HasPrefix(args, "[") {
		var words []string
		if err := json.Unmarshal([]byte(args), &words); err != nil {
			return goBuildPlan{}, false, fmt.Errorf("RUN in exec form is not a JSON array of strings: %w", err)
		}
		cmds = [][]string{words}
	} else {
		var err error
		if cmds, err = shellCommands(args, func(k string) string { return st.vars[k] }); err != nil {
			return goBuildPlan{}, false, err
		}
	}

	cwd := st.workdir
	env := maps.Clone(st.vars)
	for _, words := range cmds {
		inline := map[string]string{}
		for len(words) > 0 && isAssignment(words[0]) {
			k, v, _ := strings.Cut(words[0], "=")
			inline[k] = v
			words = words[1:]
		}
		switch {
		case len(words) == 0:
			maps.Copy(env, inline) // `A=b` alone sets a shell variable
		case words[0] == "cd" && len(words) == 2:
			cwd = resolvePath(cwd, words[1])
		case words[0] == "export":
			for _, w := range words[1:] {
				if k, v, ok := strings.Cut(w, "="); ok {
					env[k] = v
				}
			}
		case path.Base(words[0]) == "go" && len(words) >= 2 && words[1] == "build":
			maps.Copy(env, inline)
			p, err := goBuildArgs(words[2:], cwd, st)
			if err != nil {
				return goBuildPlan{}, false, err
			}
			for _, k := range slices.Sorted(maps.Keys(env)) {
				switch {
				case slices.Contains(buildEnvKept, k):
					p.env = append(p.env, k+"="+env[k])
				case strings.HasPrefix(k, "GO") && k != "GOPATH" && k != "GOLANG_VERSION" && k != "GOTOOLCHAIN":
					p.ignored = append(p.ignored, k)
				}
			}
			return p, true, nil
		}
	}
	return goBuildPlan{}, false, nil
}

func isAssignment(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	if !ok || k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// goBuildArgs maps go build's arguments from the container to the extracted context: -o is
// dropped (the image store decides where the binary goes) and absolute container paths become
// paths relative to the folder go build runs in.
func goBuildArgs(args []string, cwd string, st *stage) (goBuildPlan, error) {
	root := st.srcRoot
	if root == "" {
		root = st.workdir
	}
	rel := func(p string) (string, bool) {
		switch {
		case p == root:
			return ".", true
		case strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/"):
			return strings.TrimPrefix(p, strings.TrimSuffix(root, "/")+"/"), true
		}
		return "", false
	}
	dir, ok := rel(cwd)
	if !ok {
		return goBuildPlan{}, fmt.Errorf("go build runs in %s, outside %s where the build context was copied (COPY . %s)", cwd, root, root)
	}
	// toLocal turns an absolute container path into one relative to dir.
	toLocal := func(p string) (string, error) {
		if !path.IsAbs(p) {
			return p, nil
		}
		r, ok := rel(path.Clean(p))
		if !ok {
			return "", fmt.Errorf("go build names %s, outside %s where the build context was copied", p, root)
		}
		return relativeTo(dir, r), nil
	}

	p := goBuildPlan{dir: dir}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			for _, pkg := range args[i:] {
				local, err := toLocal(pkg)
				if err != nil {
					return goBuildPlan{}, err
				}
				p.packages = append(p.packages, local)
			}
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if goBuildValueFlags[name] && !hasValue {
			if i+1 >= len(args) {
				return goBuildPlan{}, fmt.Errorf("go build flag %s needs a value", a)
			}
			i++
			value = args[i]
		}
		switch {
		case name == "o":
			continue // the image store decides where the binary goes
		case name == "C":
			local, err := toLocal(value)
			if err != nil {
				return goBuildPlan{}, err
			}
			p.flags = append(p.flags, "-C", local)
		case goBuildValueFlags[name]:
			p.flags = append(p.flags, "-"+name+"="+value)
		default:
			p.flags = append(p.flags, a)
		}
	}
	return p, nil
}

// relativeTo expresses target (relative to the context root) relative to dir (also relative
// to the root), in the "./x" form go build reads as a package path.
func relativeTo(dir, target string) string {
	up := 0
	for dir != "." && !(target == dir || strings.HasPrefix(target, dir+"/")) {
		dir = path.Dir(dir)
		up++
	}
	rest := target
	if dir != "." {
		rest = strings.TrimPrefix(strings.TrimPrefix(target, dir), "/")
	}
	prefix := "./"
	if up > 0 {
		prefix = strings.Repeat("../", up)
	}
	if rest == "" || rest == "." {
		return path.Clean(prefix)
	}
	return prefix + rest
}

// shellWords splits an instruction's arguments into words the way Docker does: quotes,
// backslash escapes and $VAR / ${VAR} / ${VAR:-default} expansion.
func shellWords(s string, lookup func(string) string) ([]string, error) {
	cmds, err := tokenize(s, lookup, false)
	if err != nil || len(cmds) == 0 {
		return nil, err
	}
	return cmds[0], nil
}

// shellCommands splits a RUN line into simple commands, as sh would for the plain cases
// Dockerfiles use: words as shellWords makes them, separated by &&, ||, ;, | and parentheses.
func shellCommands(s string, lookup func(string) string) ([][]string, error) {
	return tokenize(s, lookup, true)
}

func tokenize(s string, lookup func(string) string, separators bool) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			endWord()
		case separators && strings.ContainsRune("&|;()", c):
			endCmd()
		case c == '\\':
			if i+1 < len(rs) {
				i++
				w.WriteRune(rs[i])
			}
			inWord = true
		case c == '\'':
			j := slices.Index(rs[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			w.WriteString(string(rs[i+1 : i+1+j]))
			i += j + 1
			inWord = true
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(rs); i++ {
				switch c := rs[i]; {
				case c == '"':
					closed = true
				case c == '\\' && i+1 < len(rs) && strings.ContainsRune("$`\"\\", rs[i+1]):
					i++
					w.WriteRune(rs[i])
				case c == '$':
					var err error
					if i, err = expand(rs, i, lookup, &w); err != nil {
						return nil, err
					}
				case c == '`':
					return nil, errors.New("command substitution (`...`) is not supported")
				default:
					w.WriteRune(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, errors.New(`unterminated " quote`)
			}
		case c == '$':
			var err error
			if i, err = expand(rs, i, lookup, &w); err != nil {
				return nil, err
			}
			inWord = true
		case c == '`':
			return nil, errors.New("command substitution (`...`) is not supported")
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	endCmd()
	return cmds, nil
}

// expand writes the value of the variable reference at rs[i] ('$') and returns the index of its
// last rune.
func expand(rs []rune, i int, lookup func(string) string, w *strings.Builder) (int, error) {
	isName := func(c rune, first bool) bool {
		return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || !first && c >= '0' && c <= '9'
	}
	switch {
	case i+1 < len(rs) && rs[i+1] == '(':
		return i, errors.New("command substitution ($(...)) is not supported")
	case i+1 < len(rs) && rs[i+1] == '{':
		j := slices.Index(rs[i+2:], '}')
		if j < 0 {
			return i, errors.New("unterminated ${")
		}
		inner := string(rs[i+2 : i+2+j])
		name, def, hasDef := strings.Cut(inner, ":-")
		if !hasDef {
			name, def, _ = strings.Cut(inner, "-")
		}
		v := lookup(name)
		if v == "" {
			v = def
		}
		w.WriteString(v)
		return i + 2 + j, nil
	case i+1 < len(rs) && isName(rs[i+1], true):
		j := i + 1
		for j < len(rs) && isName(rs[j], false) {
			j++
		}
		w.WriteString(lookup(string(rs[i+1 : j])))
		return j - 1, nil
	}
	w.WriteRune('$')
	return i, nil
}
