package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// actionBits are the actions as bits; admin includes the others.
var actionBits = map[Action]perm{
	Publish:   permPublish,
	Subscribe: permSubscribe,
	Admin:     permAdmin | permPublish | permSubscribe,
}

type perm uint8

const (
	permPublish perm = 1 << iota
	permSubscribe
	permAdmin
)

func (p perm) String() string {
	switch p {
	case permPublish:
		return "publish"
	case permSubscribe:
		return "subscribe"
	}
	return "admin"
}

// principal is an authenticated token: its name and its grants as
// patterns with bits.
type principal struct {
	name   string
	grants []grant
}

type grant struct {
	patterns []string
	bits     perm
}

// anonymous is the principal of a server without tokens: everything on
// every channel.
var anonymous = &principal{name: "anonymous", grants: []grant{{patterns: []string{"*"}, bits: permAdmin | permPublish | permSubscribe}}}

// auth holds the tokens by the SHA-256 of their secrets.
type auth struct {
	tokens []authToken
}

type authToken struct {
	digest [sha256.Size]byte
	p      *principal
}

func newAuth(tokens []Token) *auth {
	if len(tokens) == 0 {
		return nil
	}
	a := &auth{}
	for _, t := range tokens {
		p := &principal{name: t.Name}
		for _, g := range t.Grants {
			var bits perm
			for _, act := range g.Actions {
				bits |= actionBits[act]
			}
			p.grants = append(p.grants, grant{patterns: g.Channels, bits: bits})
		}
		a.tokens = append(a.tokens, authToken{digest: sha256.Sum256([]byte(t.Secret)), p: p})
	}
	return a
}

// credential is the token a request presents: a bearer token, an API key,
// or the access_token query parameter (which browsers' EventSource and
// WebSocket need). ok is false when it presents none.
func credential(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return "", true // present but not a bearer token: refused
		}
		return strings.TrimSpace(tok), true
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k, true
	}
	if q := r.URL.Query(); q.Has("access_token") {
		return q.Get("access_token"), true
	}
	return "", false
}

// authenticate finds the request's principal. Every token is compared
// (in constant time, as digests), so the time taken says nothing about
// which token came close.
func (a *auth) authenticate(r *http.Request) (*principal, *Error) {
	if a == nil {
		return anonymous, nil
	}
	secret, ok := credential(r)
	if !ok {
		return nil, apiErr(http.StatusUnauthorized, CodeUnauthorized, "no credentials: send a token as \"Authorization: Bearer TOKEN\" or \"X-API-Key: TOKEN\"")
	}
	d := sha256.Sum256([]byte(secret))
	var found *principal
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:]) == 1 {
			found = a.tokens[i].p
		}
	}
	if found == nil {
		return nil, apiErr(http.StatusUnauthorized, CodeUnauthorized, "the token is not valid")
	}
	return found, nil
}

// can says whether p may do what on the channel.
func (p *principal) can(what perm, channel string) bool {
	for _, g := range p.grants {
		if g.bits&what == 0 {
			continue
		}
		for _, pat := range g.patterns {
			if matchPattern(pat, channel) {
				return true
			}
		}
	}
	return false
}

// canAny says whether p may do anything on the channel: whether it may
// know the channel exists.
func (p *principal) canAny(channel string) bool {
	return p.can(permAdmin|permPublish|permSubscribe, channel)
}

// matchPattern matches name against pattern, where "*" matches any run of
// characters (none included) and every other character itself.
func matchPattern(pattern, name string) bool {
	// The classic two-pointer wildcard match: on a mismatch, go back to
	// the last star and let it take one more character.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// forbidden is the error of a missing permission. It says the same
// whether or not the channel exists, so a token learns nothing about
// channels it may not see.
func forbidden(p *principal, what perm, channel string) *Error {
	return apiErr(http.StatusForbidden, CodeForbidden, "token %q may not %s on channel %q", p.name, what, channel)
}
