package source

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// request rebuilds the HTTP request of an HTTP-kind event from its top-level
// members. Each integration encodes the request differently; the result is
// always what the client put on the wire, so one rule set serves them all.
// text is the body as a string when it is the payload's own text (not
// base64), "" otherwise: the JSON walk reads it without a second copy.
func request(kind Kind, m *members) (r *Request, text string) {
	r = &Request{Protocol: "HTTP/1.1"}
	switch kind {
	case APIGatewayHTTP, FunctionURL:
		r.Method = str(m.method)
		// rawPath and rawQueryString are as the client sent them.
		r.URI = orSlash(str(m.rawPath))
		if q := str(m.rawQueryString); q != "" {
			r.URI += "?" + q
		}
		if p := str(m.httpProtocol); p != "" {
			r.Protocol = p
		}
		r.RemoteAddr = str(m.sourceIP)
		r.Headers = headers(r.Headers, m.headers, gjson.Result{})
		r.Headers = cookies(r.Headers, m.cookies)
	case APIGatewayREST:
		r.Method = str(m.httpMethod)
		// API Gateway REST hands over the path decoded: encode it again.
		r.URI = withQuery(orSlash((&url.URL{Path: str(m.path)}).EscapedPath()), query(m, true))
		if p := str(m.protocol); p != "" {
			r.Protocol = p
		}
		r.RemoteAddr = sourceIP(m.identity)
		r.Headers = headers(r.Headers, m.headers, m.multiValueHeaders)
	case ALB:
		r.Method = str(m.httpMethod)
		// The ALB passes the path and the query parameters undecoded.
		r.URI = withQuery(orSlash(str(m.path)), query(m, false))
		r.Headers = headers(r.Headers, m.headers, m.multiValueHeaders)
	case APIGatewayWebSocket:
		// A WebSocket route has no method or path of its own: the connection
		// is opened by a GET and each message arrives like a POST.
		r.Method = "GET"
		if m.eventType.String() == "MESSAGE" {
			r.Method = "POST"
		}
		r.URI = withQuery("/", query(m, true))
		r.RemoteAddr = sourceIP(m.identity)
		r.Headers = headers(r.Headers, m.headers, m.multiValueHeaders)
	}
	r.Body, text = body(m)
	if kind == APIGatewayWebSocket && r.Method == "POST" && len(r.Body) > 0 && !hasHeader(r.Headers, "Content-Type") {
		// Give body rules a content type to choose a body parser by.
		ct := "text/plain"
		if c := firstByte(r.Body); c == '{' || c == '[' {
			ct = "application/json"
		}
		r.Headers = append(r.Headers, Header{Name: "content-type", Value: ct})
	}
	// API Gateway and the ALB terminate HTTP and drop the framing headers;
	// the headers added are named in lowercase, as HTTP/2 and API Gateway
	// v2 name them.
	// a client sending a POST, PUT, PATCH or DELETE sent a length, so give
	// the rules one (CRS 920180 flags a POST without it). A GET that carries
	// a body gets none: API Gateway passes such bodies on, and the body is
	// inspected either way.
	if !hasHeader(r.Headers, "Content-Length") && !hasHeader(r.Headers, "Transfer-Encoding") &&
		(r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" || r.Method == "DELETE") {
		r.Headers = append(r.Headers, Header{Name: "content-length", Value: strconv.Itoa(len(r.Body))})
	}
	if !hasHeader(r.Headers, "Host") {
		if d := m.domainName.String(); d != "" {
			r.Headers = append(r.Headers, Header{Name: "host", Value: d})
		}
	}
	return r, text
}

// sourceIP returns requestContext.identity.sourceIp as encoding/json reads
// it.
func sourceIP(identity gjson.Result) string {
	var ip [1]gjson.Result
	lookup(identity, sourceIPName, ip[:])
	return str(ip[0])
}

var sourceIPName = []string{"sourceIp"}

func orSlash(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

func withQuery(path, query string) string {
	if query == "" {
		return path
	}
	return path + "?" + query
}

// query rebuilds the query string from the query-parameter members (both,
// see pairs). API
// Gateway decodes the parameters, so escape re-encodes them; the ALB does not.
func query(m *members, escape bool) string {
	var sb strings.Builder
	param := func(k, v string) {
		if sb.Len() > 0 {
			sb.WriteByte('&')
		}
		if escape {
			k, v = url.QueryEscape(k), url.QueryEscape(v)
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(v)
	}
	pairs(m.queryStringParameters, m.multiValueQueryStringParameters, param)
	return sb.String()
}

// headers appends the request headers from the header members (both, see
// pairs).
func headers(hs []Header, single, multi gjson.Result) []Header {
	pairs(single, multi, func(k, v string) {
		if hs == nil {
			hs = make([]Header, 0, 16) // a typical request's, and the headers added later
		}
		hs = append(hs, Header{Name: k, Value: v})
	})
	return hs
}

// pairs calls fn for each name and value of a multi-value member
// ({"k": ["v1", "v2"]}), then for each of a single-value member ({"k":
// "v"}) that the multi-value member does not have, in payload order. Null
// values are skipped. API Gateway REST fills both with the same pairs; the
// aws-lambda-go types carry both, and a handler reading the one that was
// not inspected must not find anything new there.
func pairs(single, multi gjson.Result, fn func(k, v string)) {
	var seen [][2]string
	if multi.IsObject() {
		seen = make([][2]string, 0, 32)
		multi.ForEach(func(k, v gjson.Result) bool {
			name := validUTF8(k.Str)
			each(v, func(v string) {
				seen = append(seen, [2]string{name, v})
				fn(name, v)
			})
			return true
		})
	}
	if !single.IsObject() {
		return
	}
	n := 0
	const maxScan = 64
	var set map[[2]string]struct{} // seen, when there are more than maxScan
	single.ForEach(func(k, v gjson.Result) bool {
		name := validUTF8(k.Str)
		each(v, func(v string) {
			p := [2]string{name, v}
			// API Gateway writes the two in the same order: look where
			// the pair would be first.
			if n < len(seen) && seen[n] == p {
				n++
				return
			}
			// Elsewhere: a scan of a real event's few pairs, a set past
			// that, since scanning for every pair would be quadratic in
			// the payload.
			if set == nil && len(seen) > maxScan {
				set = make(map[[2]string]struct{}, len(seen))
				for _, q := range seen {
					set[q] = struct{}{}
				}
			}
			if set != nil {
				if _, ok := set[p]; ok {
					return
				}
			} else if slices.Contains(seen, p) {
				return
			}
			fn(name, v)
		})
		return true
	})
}

// each calls fn for each element of the array v that is not null, or for v
// itself if it is not an array or null.
func each(v gjson.Result, fn func(string)) {
	if v.IsArray() {
		v.ForEach(func(_, e gjson.Result) bool {
			if e.Type != gjson.Null {
				fn(str(e))
			}
			return true
		})
	} else if v.Type != gjson.Null {
		fn(str(v))
	}
}

// cookies folds the cookies member of a payload v2 event, where API Gateway
// moves the Cookie header, back into one Cookie header.
func cookies(hs []Header, list gjson.Result) []Header {
	if !list.IsArray() {
		return hs
	}
	var sb strings.Builder
	list.ForEach(func(_, c gjson.Result) bool {
		if sb.Len() > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(str(c))
		return true
	})
	if sb.Len() == 0 {
		return hs
	}
	for i := range hs {
		if strings.EqualFold(hs[i].Name, "Cookie") {
			if hs[i].Value != "" {
				hs[i].Value += "; "
			}
			hs[i].Value += sb.String()
			return hs
		}
	}
	return append(hs, Header{Name: "Cookie", Value: sb.String()})
}

// body returns the request body, base64-decoded when the event says so, and
// as text when it was not decoded. A body that does not decode is returned
// as sent, so it is still inspected.
func body(m *members) ([]byte, string) {
	b := str(m.body)
	if b == "" {
		return nil, ""
	}
	if m.isBase64Encoded.Type == gjson.True {
		if d, err := base64.StdEncoding.DecodeString(b); err == nil {
			return d, ""
		}
	}
	return []byte(b), b
}

func hasHeader(hs []Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// firstByte returns the first byte of b that is not JSON whitespace, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		if !isSpace(c) {
			return c
		}
	}
	return 0
}
