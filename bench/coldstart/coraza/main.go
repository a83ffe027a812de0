// Command coraza is the bare function with raw Coraza and the full OWASP
// CRS compiled at init: the reference lambdarasp's cold start is compared
// with.
package main

import (
	"context"
	"encoding/json"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(
		"Include @coraza.conf-recommended\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\nSecRuleEngine On"))
	if err != nil {
		panic(err)
	}
	lambda.Start(func(_ context.Context, ev json.RawMessage) (string, error) {
		tx := w.NewTransaction()
		defer tx.Close()
		tx.AddRequestHeader("content-type", "application/json")
		if _, _, err := tx.WriteRequestBody(ev); err != nil {
			return "", err
		}
		if it, _ := tx.ProcessRequestBody(); it != nil {
			return "blocked", nil
		}
		return "ok", nil
	})
}
