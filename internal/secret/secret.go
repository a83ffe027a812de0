package secret

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is what a secret was recognised as. Its values are stable: reports
// and alerts carry them.
type Kind string

// The kinds Find returns.
const (
	AWSAccessKeyID Kind = "aws-access-key-id"     // AKIA… (long-term) or ASIA… (temporary)
	AWSSecretKey   Kind = "aws-secret-access-key" // 40 base64 characters, by name or beside an access key id
	PrivateKey     Kind = "private-key"           // a PEM private key block
	GitHubToken    Kind = "github-token"          // ghp_, gho_, ghu_, ghs_, ghr_, github_pat_
	SlackToken     Kind = "slack-token"           // xoxb-, xoxp-, … and incoming-webhook URLs
	StripeKey      Kind = "stripe-key"            // sk_live_, rk_test_, … (publishable pk_ keys are not secrets)
	JWT            Kind = "jwt"                   // a signed JSON Web Token
	URLPassword    Kind = "url-password"          // scheme://user:password@host
	Named          Kind = "secret-by-name"        // the name says secret and the value is not a reference
	HighEntropy    Kind = "high-entropy-token"    // a weaker name (…_KEY, AUTH) and a random-looking value
)

// shapes are checked in order; the first match wins.
var shapes = []struct {
	kind Kind
	re   *regexp.Regexp
}{
	{PrivateKey, regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----`)},
	{AWSAccessKeyID, regexp.MustCompile(`(?:^|[^A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?:$|[^A-Z0-9])`)},
	{GitHubToken, regexp.MustCompile(`(?:^|[^A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})`)},
	{SlackToken, regexp.MustCompile(`(?:^|[^A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+`)},
	{StripeKey, regexp.MustCompile(`(?:^|[^A-Za-z0-9])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}`)},
	{JWT, regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)},
	{URLPassword, regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@[^/\s@]`)},
}

// awsSecret is the shape of an AWS secret access key.
var awsSecret = regexp.MustCompile(`^[A-Za-z0-9/+]{40}$`)

// strongWords make a name a secret's on their own (also as a word's
// ending: DBPASSWORD); strongPairs as two adjacent words.
var (
	strongWords  = []string{"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "SECRETS", "TOKEN", "CREDENTIAL", "CREDENTIALS", "APIKEY", "PRIVATEKEY", "ACCESSKEY", "SECRETKEY"}
	exactStrong  = map[string]bool{"PASS": true, "PWD": true}
	strongPairs  = [][2]string{{"API", "KEY"}, {"PRIVATE", "KEY"}, {"ACCESS", "KEY"}, {"SECRET", "KEY"}}
	weakWords    = map[string]bool{"AUTH": true, "SALT": true, "HMAC": true, "SIGNATURE": true, "SESSION": true, "COOKIE": true}
	weakSuffixes = []string{"KEY"}
)

// notSecretWords in a name say the value describes a secret (where it is,
// how long it lives) rather than being one.
var notSecretWords = map[string]bool{
	"ARN": true, "NAME": true, "ID": true, "IDS": true, "PATH": true, "FILE": true, "DIR": true,
	"URL": true, "URI": true, "ENDPOINT": true, "HOST": true, "PORT": true, "REGION": true,
	"TTL": true, "TIMEOUT": true, "EXPIRY": true, "EXPIRES": true, "EXPIRATION": true, "LIFETIME": true, "AGE": true,
	"LENGTH": true, "LEN": true, "SIZE": true, "COUNT": true, "LIMIT": true, "MIN": true, "MAX": true,
	"TYPE": true, "HEADER": true, "PARAM": true, "PARAMETER": true, "FIELD": true,
	"ENABLED": true, "DISABLED": true, "ENABLE": true, "MODE": true, "VERSION": true, "ROTATION": true,
	"ISSUER": true, "AUDIENCE": true, "ALGORITHM": true, "ALG": true, "SCOPE": true, "POLICY": true,
	"BUCKET": true, "TABLE": true, "QUEUE": true, "TOPIC": true, "STAGE": true, "PREFIX": true, "LOCATION": true,
}

// Find reports whether the variable name=value holds a secret in plain
// text, and as what. See the package documentation for the rules.
func Find(name, value string) (Kind, bool) {
	if strings.TrimSpace(value) == "" || isReference(value) {
		return "", false
	}
	for _, s := range shapes {
		if s.re.MatchString(value) {
			return s.kind, true
		}
	}
	strong, weak := nameSays(name)
	if (!strong && !weak) || isPlain(value) {
		return "", false
	}
	if awsSecret.MatchString(value) && (strings.Contains(strings.ToUpper(name), "AWS") || strings.Contains(normal(name), "SECRETACCESSKEY")) {
		return AWSSecretKey, true
	}
	if strong {
		return Named, true
	}
	if highEntropy(value) {
		return HighEntropy, true
	}
	return "", false
}

// A Finding is one variable of an environment that holds a secret.
type Finding struct {
	Name   string // the variable's name
	Kind   Kind
	Masked string // Mask(value)
}

// LambdaSets reports whether Lambda sets the variable name in every
// environment (the execution role's credentials, its own endpoints and
// tokens): they are not the deployer's doing, so Scan skips them.
func LambdaSets(name string) bool {
	switch name {
	case "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "_X_AMZN_TRACE_ID":
		return true
	}
	return strings.HasPrefix(name, "AWS_LAMBDA_")
}

// Scan judges every variable of env, sorted by name. It skips those Lambda
// sets (LambdaSets), and finds an AWS secret access key beside an access
// key id whatever the key's name.
func Scan(env map[string]string) []Finding {
	names := make([]string, 0, len(env))
	for n := range env {
		if !LambdaSets(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	kinds := make([]Kind, len(names))
	hasKeyID := false
	for i, n := range names {
		kinds[i], _ = Find(n, env[n])
		hasKeyID = hasKeyID || kinds[i] == AWSAccessKeyID
	}
	var out []Finding
	for i, n := range names {
		v := env[n]
		if hasKeyID && (kinds[i] == "" || kinds[i] == Named || kinds[i] == HighEntropy) && awsSecret.MatchString(v) && classes(v) >= 2 {
			kinds[i] = AWSSecretKey
		}
		if kinds[i] != "" {
			out = append(out, Finding{Name: n, Kind: kinds[i], Masked: Mask(v)})
		}
	}
	return out
}

// Mask returns what may be shown of a secret: its first 4 characters at
// most, and never more than a quarter of them (none of a value shorter
// than 4), then "…" and the length in characters: Mask("AKIAIOSFODNN7EXAMPLE")
// is "AKIA…(20 chars)". Control characters in the kept part show as "?".
func Mask(value string) string {
	n := utf8.RuneCountInString(value)
	keep := min(4, n/4)
	var b strings.Builder
	for _, r := range value {
		if keep == 0 {
			break
		}
		keep--
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	b.WriteString("…(")
	b.WriteString(strconv.Itoa(n))
	b.WriteString(" chars)")
	return b.String()
}

// nameSays tells whether a variable name says secret, strongly or weakly,
// and no word in it says the value only describes one.
func nameSays(name string) (strong, weak bool) {
	ws := words(name)
	for _, w := range ws {
		if notSecretWords[w] {
			return false, false
		}
	}
	for i, w := range ws {
		if exactStrong[w] {
			strong = true
		}
		for _, s := range strongWords {
			if strings.HasSuffix(w, s) {
				strong = true
			}
		}
		if i > 0 {
			for _, p := range strongPairs {
				if ws[i-1] == p[0] && w == p[1] {
					strong = true
				}
			}
		}
		if weakWords[w] {
			weak = true
		}
		for _, s := range weakSuffixes {
			if strings.HasSuffix(w, s) {
				weak = true
			}
		}
	}
	return strong, weak
}

// words splits a name at non-alphanumerics, at lower-to-upper case
// changes and between letters and digits (dbPassword2: DB PASSWORD 2), in
// upper case.
func words(name string) []string {
	var ws []string
	start := -1
	var prev rune
	flush := func(end int) {
		if start >= 0 {
			ws = append(ws, strings.ToUpper(name[start:end]))
			start = -1
		}
	}
	for i, r := range name {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush(i)
		case start >= 0 && (unicode.IsUpper(r) && unicode.IsLower(prev) || unicode.IsDigit(r) != unicode.IsDigit(prev)):
			flush(i)
			start = i
		case start < 0:
			start = i
		}
		prev = r
	}
	flush(len(name))
	return ws
}

// normal is name in upper case without separators.
func normal(name string) string {
	return strings.Join(words(name), "")
}

// isReference reports a value that points at a secret instead of holding
// it: a CloudFormation dynamic reference or an ARN.
func isReference(v string) bool {
	v = strings.TrimSpace(v)
	return strings.HasPrefix(v, "{{resolve:") || strings.HasPrefix(v, "arn:")
}

// isPlain reports a value no secret looks like: a number, a boolean, or a
// Parameter Store path.
func isPlain(v string) bool {
	v = strings.TrimSpace(v)
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return true
	}
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "none", "null":
		return true
	}
	if strings.HasPrefix(v, "/") && strings.IndexFunc(v, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("/_.-", r)))
	}) < 0 {
		return true
	}
	return false
}

// hexToken and b64Token are the alphabets of random tokens.
var (
	hexToken = regexp.MustCompile(`^[0-9A-Fa-f]{16,}$`)
	b64Token = regexp.MustCompile(`^[A-Za-z0-9+/=_-]{16,}$`)
)

// highEntropy reports a value that looks like a random token: 16 hex
// digits or more with letters and digits among them, or 16 characters or
// more of base64 or base64url with lower case, upper case and digits and
// 3.5 bits of entropy per character or more. Paths, host names, dates and
// words (uploads/2024, orders-v2-2024-11-22) are not.
func highEntropy(v string) bool {
	if hexToken.MatchString(v) {
		return strings.ContainsAny(v, "0123456789") && strings.ContainsAny(v, "abcdefABCDEF")
	}
	if !b64Token.MatchString(v) || classes(v) < 3 {
		return false
	}
	var counts [256]int
	for i := 0; i < len(v); i++ {
		counts[v[i]]++
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(len(v))
			h -= p * math.Log2(p)
		}
	}
	return h >= 3.5
}

// classes counts which of lower case, upper case and digits v has.
func classes(v string) int {
	var lo, up, di int
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z':
			lo = 1
		case r >= 'A' && r <= 'Z':
			up = 1
		case r >= '0' && r <= '9':
			di = 1
		}
	}
	return lo + up + di
}
