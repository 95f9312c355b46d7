package testdb

import "runtime/debug"

// BuildFlags are the go build flags that build a program as the running
// test binary was built. Under go test -race, the packages the program
// shares with the test are then already in the build cache; without -race
// they would all be compiled again (a minute on two cores with a cold
// cache).
func BuildFlags() []string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return []string{"-race"}
			}
		}
	}
	return nil
}
