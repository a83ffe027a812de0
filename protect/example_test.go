package protect_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/lambdarasp/lambdarasp/protect"
)

// A call to the instance metadata, however its address is written, is
// refused before anything is dialed; the error says why.
func ExampleTransport() {
	client := &http.Client{Transport: protect.Transport(nil)}
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://0xa9fea9fe/latest/meta-data/",
		"http://[::ffff:169.254.169.254]/latest/meta-data/",
	} {
		_, err := client.Get(u)
		var denied *protect.DeniedError
		if errors.As(err, &denied) {
			fmt.Println(denied.Rule, denied)
		}
	}
	// Output:
	// 100992 protect: outbound to 169.254.169.254:80 denied: instance metadata
	// 100992 protect: outbound to 169.254.169.254:80 denied: instance metadata
	// 100992 protect: outbound to 169.254.169.254:80 denied: instance metadata
}
