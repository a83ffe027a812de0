package secret

import (
	"fmt"
	"strings"
	"testing"
)

// Test values are assembled from parts so that no scanner mistakes this
// file for a leak.
var (
	akia         = "AKIA" + "IOSFODNN7EXAMPLE"
	asia         = "ASIA" + "Y34FZKBOKMUTVV7A"
	awsSecretKey = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
	pemKey       = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----"
	ghToken      = "ghp_" + "1234567890abcdefghijABCDEFGHIJ123456"
	ghPAT        = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
	slack        = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOp"
	webhook      = "https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
	stripe       = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
	jwt          = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)

var cases = []struct {
	name, value string
	kind        Kind // "" for no finding
}{
	// By shape, whatever the name.
	{"CONFIG", akia, AWSAccessKeyID},
	{"ACCESS_KEY_ID", asia, AWSAccessKeyID},
	{"SETTINGS", `{"key":"` + akia + `"}`, AWSAccessKeyID},
	{"TLS_KEY", pemKey, PrivateKey},
	{"SSH", "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3Bl...", PrivateKey},
	{"GH", ghToken, GitHubToken},
	{"GH", ghPAT, GitHubToken},
	{"NOTIFY", slack, SlackToken},
	{"HOOK_URL", webhook, SlackToken},
	{"PAYMENTS", stripe, StripeKey},
	{"BEARER", jwt, JWT},
	{"DATABASE_URL", "postgres://app:s3cr3t@db.internal:5432/orders", URLPassword},
	{"REDIS", "redis://:hunter22@cache:6379", URLPassword},

	// By name.
	{"DB_PASSWORD", "hunter22", Named},
	{"db_password", "hunter22", Named},
	{"dbPassword", "hunter22", Named},
	{"DBPASSWORD", "hunter22", Named},
	{"PASSWORD2", "hunter22", Named},
	{"SMTP_PASS", "hunter22", Named},
	{"CLIENT_SECRET", "abc", Named},
	{"GITHUB_TOKEN", "not-a-real-shape", Named},
	{"API_KEY", "k-123", Named},
	{"apiKey", "k-123", Named},
	{"PRIVATE_KEY", "base64stuff", Named},
	{"SERVICE_CREDENTIALS", `{"user":"a","pass":"b"}`, Named},
	{"MY_AWS_SECRET", awsSecretKey, AWSSecretKey},
	{"BACKUP_SECRET_ACCESS_KEY", awsSecretKey, AWSSecretKey},
	{"SIGNING_KEY", "9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c", HighEntropy},
	{"SESSION_COOKIE_AUTH", "Zx81Kq0Lm2Np4Rt6", HighEntropy},

	// Not secrets.
	{"TOKEN_TTL", "300", ""},
	{"PASSWORD_MIN_LENGTH", "12", ""},
	{"DB_PASSWORD", "", ""},
	{"DB_PASSWORD", "   ", ""},
	{"DB_PASSWORD", "{{resolve:secretsmanager:prod/db:SecretString:password}}", ""},
	{"DB_PASSWORD", "{{resolve:ssm-secure:/prod/db/password:3}}", ""},
	{"DB_PASSWORD", "/prod/db/password", ""},
	{"API_TOKEN", "true", ""},
	{"SECRET", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", ""},
	{"SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", ""},
	{"SECRET_NAME", "prod/db", ""},
	{"TOKEN_URL", "https://auth.example.com/oauth2/token", ""},
	{"API_KEY_HEADER", "x-api-key", ""},
	{"KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab", ""},
	{"TOKENIZER", "bert-base-uncased", ""},
	{"PASSPORT_COUNTRY", "FR", ""},
	{"BYPASS_CACHE", "1", ""},
	{"CACHE_KEY", "orders", ""},
	{"PARTITION_KEY", "customerId", ""},
	{"SORT_KEY", "created-at-descending", ""},
	{"S3_KEY", "uploads/incoming/2024", ""},
	{"CACHE_KEY", "orders-v2-2024-11-22", ""},
	{"OBJECT_KEY", "reports/2024/daily-01.csv", ""},
	{"IDEMPOTENCY_KEY_JMESPATH", "powertools_json(body).orderId", ""},
	{"KEY_ALIAS", "alias/orders-key-2024", ""},
	{"AUTH_DOMAIN", "auth.example-2024.com", ""},
	{"SORT_KEY", "createdAt#2024", ""},
	{"HMAC_KEY", "0123456789012345", ""},            // digits only: not hex-looking
	{"SIGNING_KEY", "zzzzzzzzzzzzzzzzzzzzzzZ1", ""}, // too little entropy
	{"SIGNING_KEY", "Gh1Jk2Gh1Jk2Gh1Jk2Gh1Jk2", ""}, // a repeated pattern: 2.6 bits per character
	{"HMAC_KEY", "NzQ3YjE5ZGEtMjU0Ny00ZDQ5LWE4", HighEntropy},
	{"STRIPE_PUBLISHABLE", "pk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", ""},
	{"LAMBDARASP_MODE", "block", ""},
	{"HOME_URL", "https://example.com/a:b@c", ""},
	{"NOTE", "AKIA in a sentence is fine", ""},
	{"ID", "XAKIAIOSFODNN7EXAMPLEX", ""},
}

func TestFind(t *testing.T) {
	for _, c := range cases {
		kind, ok := Find(c.name, c.value)
		if ok != (c.kind != "") || kind != c.kind {
			t.Errorf("Find(%q, %q) = %q, %v; want %q", c.name, c.value, kind, ok, c.kind)
		}
	}
}

func TestScan(t *testing.T) {
	env := map[string]string{
		"KEY_ONE":                           akia,
		"KEY_TWO":                           awsSecretKey,                  // a weak name: found as what it is beside the id
		"VALUE_THREE":                       strings.ToLower(awsSecretKey), // no name at all
		"TABLE":                             "orders",
		"VALUE_FOUR":                        strings.Repeat("abcd", 10), // 40 characters of one class: no key
		"AWS_ACCESS_KEY_ID":                 asia,                       // Lambda's own: skipped
		"AWS_SECRET_ACCESS_KEY":             awsSecretKey,
		"AWS_SESSION_TOKEN":                 "IQoJb3JpZ2luX2VjEJr...",
		"AWS_ACCESS_KEY":                    asia, // Lambda's too
		"AWS_CONTAINER_AUTHORIZATION_TOKEN": "IQoJb3JpZ2luX2VjEJrQWERTYUIOPASDFGHJKL0123456789abc",
		"DB_PASSWORD":                       "hunter22",
	}
	got := fmt.Sprint(Scan(env))
	want := fmt.Sprint([]Finding{
		{"DB_PASSWORD", Named, "hu…(8 chars)"},
		{"KEY_ONE", AWSAccessKeyID, "AKIA…(20 chars)"},
		{"KEY_TWO", AWSSecretKey, "wJal…(40 chars)"},
		{"VALUE_THREE", AWSSecretKey, "wjal…(40 chars)"},
	})
	if got != want {
		t.Errorf("Scan:\n got %s\nwant %s", got, want)
	}
	delete(env, "KEY_ONE")
	want = fmt.Sprint([]Finding{
		{"DB_PASSWORD", Named, "hu…(8 chars)"},
		{"KEY_TWO", HighEntropy, "wJal…(40 chars)"},
	})
	if got := fmt.Sprint(Scan(env)); got != want {
		t.Errorf("Scan without an access key id:\n got %s\nwant %s", got, want)
	}
}

func TestMask(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "…(0 chars)"},
		{"abc", "…(3 chars)"},
		{"abcdefg", "a…(7 chars)"},
		{"hunter22", "hu…(8 chars)"},
		{akia, "AKIA…(20 chars)"},
		{"pässwörd", "pä…(8 chars)"},
		{"\x00\x01\x02\x03secret", "??…(10 chars)"},
	} {
		if got := Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Never more than a quarter, never more than 4, for every case above.
	for _, c := range cases {
		m := Mask(c.value)
		kept := []rune(strings.SplitN(m, "…", 2)[0])
		if n := len([]rune(c.value)); len(kept) > 4 || len(kept)*4 > n {
			t.Errorf("Mask(%q) = %q keeps %d of %d characters", c.value, m, len(kept), n)
		}
		if len(c.value) > 8 && strings.Contains(m, c.value[4:]) {
			t.Errorf("Mask(%q) = %q shows the value", c.value, m)
		}
	}
}

func ExampleMask() {
	fmt.Println(Mask("AKIA" + "IOSFODNN7EXAMPLE"))
	// Output: AKIA…(20 chars)
}

func ExampleFind() {
	fmt.Println(Find("TOKEN_TTL", "300"))
	fmt.Println(Find("DB_PASSWORD", "{{resolve:ssm-secure:/prod/db/password}}"))
	fmt.Println(Find("DB_PASSWORD", "hunter22"))
	// Output:
	// false
	//  false
	// secret-by-name true
}
