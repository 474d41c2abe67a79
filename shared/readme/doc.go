// Package readme holds the tests that keep the tutorial's prose true: every test a README names
// exists, every claim has its proof, and the values and outputs the README shows are the ones
// the code has. It has no code of its own.
package readme
