// Package testsupport is what the project's tests share beside their
// servers (package testdb has the databases, Redis clean-up and
// [testdb.Unavailable]): stores that show a cache only the bytes side of a
// store, and a wait for a condition that another goroutine brings about.
//
// It is imported by tests only.
package testsupport
