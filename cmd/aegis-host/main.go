// Command aegis-host is the stream processing host: it runs a pub/sub engine
// and change data capture intake, with processing steps written as
// WebAssembly modules.
//
// The command is thin: main only hands the process arguments and standard
// streams to run, so the whole CLI can be tested in-process.
package main

import "os"

// version is the release this binary was built from. Release builds set it
// with -ldflags "-X main.version=v1.2.3" (see the build task in Taskfile.yml).
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
