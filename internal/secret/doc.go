// Package secret tells whether an environment variable holds a secret in
// plain text, and masks the value for reports.
//
// Find judges one variable, by the shape of its value first and by its
// name second:
//
//   - by shape, whatever the name: AWS access key ids (AKIA…, ASIA…), PEM
//     private keys, GitHub, Slack and Stripe secret tokens, Slack webhook
//     URLs, JWTs, and URLs with a password in them (scheme://user:pass@host);
//   - by name, case-insensitive, on the words of the name (split at
//     underscores, dashes, dots, lower-to-upper case changes and digits):
//     PASSWORD, PASSWD, PASSPHRASE, PASS, PWD, SECRET, TOKEN, CREDENTIAL(S)
//     (also as a word's ending: DBPASSWORD, GHTOKEN), API KEY, PRIVATE KEY,
//     ACCESS KEY, SECRET KEY; an AWS secret access key (40 characters of
//     base64) under such a name is told apart. Weaker words — KEY (or a word
//     ending in KEY), AUTH, SALT, HMAC, SIGNATURE, SESSION, COOKIE — count
//     only when the value is a random-looking token too: 16 hex digits or
//     more, or 16 characters or more of base64 or base64url mixing lower
//     case, upper case and digits with 3.5 bits of entropy per character
//     or more (not a path, a host name, a date or words).
//
// A name is not a finding when it also has a word that says the value
// describes a secret rather than being one (ARN, NAME, ID, PATH, FILE,
// URL, ENDPOINT, TTL, TIMEOUT, LENGTH, TYPE, HEADER, PARAM, REGION, MODE,
// VERSION, … : see notSecretWords), nor when the value is empty, a number,
// a boolean, an ARN, a Parameter Store path (/app/db/password), or a
// CloudFormation dynamic reference ({{resolve:secretsmanager:…}},
// {{resolve:ssm-secure:…}}). Value shapes are checked regardless of the
// name's exclusions: ACCESS_KEY_ID=AKIA… is a finding.
//
// Scan judges a whole environment and adds one thing Find cannot see: a
// 40-character base64 value beside an AWS access key id is that key's
// secret, whatever its name.
//
// Mask is how a secret appears in any output: at most its first 4
// characters and never more than a quarter of them, followed by its
// length.
//
// Everything here is pure, allocation-light and safe for concurrent use.
// Cost is linear in the length of the value.
package secret
