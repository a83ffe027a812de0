package main

import (
	"fmt"
	"io"
	"os"

	"github.com/lambdarasp/lambdarasp/internal/codedigest"
)

const digestUsage = `usage: lambdarasp digest DIR|ZIP

Prints the SHA-256 digest of a function's code, as the lambdarasp extension
computes it over /var/task at start: set it as LAMBDARASP_CODE_SHA256 on the
function. DIR is the directory whose contents are deployed (the one holding
bootstrap); ZIP is the deployment package.
`

// digest prints the code digest of a deployment directory or zip: the
// value of LAMBDARASP_CODE_SHA256 for a function deployed from it (see
// internal/codedigest for the definition). Exit status 0, or 2 when the
// argument is wrong or the tree has no digest.
func digest(args []string, stdout, stderr io.Writer) int {
	fl := newFlags("digest", digestUsage, stderr)
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return exitUsage
	}
	p := fl.Arg(0)
	st, err := os.Stat(p)
	if err != nil {
		fmt.Fprintf(stderr, "lambdarasp digest: %v: give the deployment directory or zip\n", err)
		return exitUsage
	}
	var sum codedigest.Sum
	if st.IsDir() {
		sum, err = codedigest.Dir(p, codedigest.Limits{})
	} else {
		sum, err = codedigest.ZipFile(p, codedigest.Limits{})
	}
	if err != nil {
		fmt.Fprintf(stderr, "lambdarasp digest: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, sum.SHA256)
	return 0
}
