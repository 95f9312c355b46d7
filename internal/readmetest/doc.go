// Package readmetest holds the test that keeps README.md's Go snippets
// true: each ```go block is compiled against this module, or is checked to
// be a verbatim copy of a file that is. It has no code of its own.
package readmetest
