package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Secrets in task configs (docs/security.md, "Secrets").
//
// A value is secret when its key says so (IsSecretKey), and a part of a
// value is secret when it is the password of a URL or DSN
// (mysql://u:SECRET@h/db, u:SECRET@tcp(h)/db), the value of a
// password=... pair, or the value of a secret-named key inside a JSON value.
// Everything that shows a config (detail, batchDetail, audit rows, logs)
// shows Config.Masked; free text that may quote a config (connector
// errors, log lines) goes through a Scrubber that knows the task's actual
// secret strings. A config write that sends the mask back keeps the stored
// value (Config.Unmask). ${env:NAME} and ${file:/path} references are
// stored as written and resolved only when a runner starts
// (ResolveReferences), so what they name never enters the database.

// Masked is the placeholder shown instead of a secret value.
const Masked = "******"

// secretWords mark keys whose values never leave the store. Keys are
// compared lower-cased with '_', '-' and '.' removed, so private_key,
// privateKey and private-key are all privatekey.
var secretWords = []string{
	"password", "passwd", "pwd", "secret", "token", "credential", "auth",
	"privatekey", "apikey", "accesskey", "passphrase",
}

// IsSecretKey reports whether a config key holds a secret.
func IsSecretKey(k string) bool {
	k = strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(k))
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// The secret parts of a value or of free text. Each pattern's group 2 is
// the secret; groups 1 and 3 stay.
var secretPatterns = []*regexp.Regexp{
	// scheme://user:PASSWORD@host... (the password runs to the last @ of
	// the authority, as an unescaped @ in a password would).
	regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#:@]*:)([^\s/?#]*)(@)`),
	// Go MySQL driver DSN: user:PASSWORD@tcp(host:port)/db, user:PASSWORD@/db.
	regexp.MustCompile(`((?:^|[\s"'=,;(\[{])[^\s:@/"'=,;(\[{]+:)([^\s"']*)(@(?:tcp6?\(|udp\(|unix\(|/))`),
	// password=VALUE, "token": "VALUE", secret: VALUE (keyword DSNs,
	// query strings, free text).
	regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token|api_?key|private_?key|credentials?)["']?\s*[=:]\s*["']?)([^\s"'&;,)}]+)(["']?)`),
}

// MaskValue masks the secret parts of one config value: URL and DSN
// passwords, password=... pairs, and secret-named keys (at any depth) of
// a value that is a JSON object or array. A value with nothing secret is
// returned unchanged.
func MaskValue(v string) string {
	if !strings.ContainsAny(v, "@=:") {
		// Every pattern needs an @ or a = or : (and so does JSON with a
		// key): a plain value (a path, a type name) is returned as is.
		return v
	}
	if j, ok := maskJSON(v); ok {
		return j
	}
	for _, re := range secretPatterns {
		v = re.ReplaceAllStringFunc(v, func(m string) string {
			g := re.FindStringSubmatch(m)
			if g[2] == "" || g[2] == Masked || onlyReferences(g[2]) {
				return m
			}
			return g[1] + Masked + g[3]
		})
	}
	return v
}

// maskJSON masks a JSON object or array value; ok is false for anything
// else, and v comes back unchanged when nothing in it is secret.
func maskJSON(v string) (string, bool) {
	doc, ok := decodeJSON(v)
	if !ok {
		return v, false
	}
	masked, changed := walkJSON(doc, nil, func(key string, leaf any, _ []string) (any, bool) {
		if key != "" && IsSecretKey(key) {
			if s, isStr := leaf.(string); isStr && (s == "" || s == Masked || onlyReferences(s)) {
				return leaf, false
			}
			if leaf == nil {
				return leaf, false
			}
			return Masked, true
		}
		if s, isStr := leaf.(string); isStr {
			if m := MaskValue(s); m != s {
				return m, true
			}
		}
		return leaf, false
	})
	if !changed {
		return v, true
	}
	return encodeJSON(masked), true
}

func decodeJSON(v string) (any, bool) {
	t := strings.TrimSpace(v)
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return doc, true
}

func encodeJSON(doc any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(doc) != nil {
		return Masked
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// walkJSON calls leaf on every scalar, and on every value of a
// secret-named key whatever its type, with the key it sits under ("" in
// an array) and its path; it rebuilds the document with what leaf returns.
func walkJSON(doc any, path []string, leaf func(key string, v any, path []string) (any, bool)) (any, bool) {
	var visit func(key string, v any, path []string) (any, bool)
	visit = func(key string, v any, path []string) (any, bool) {
		if key != "" && IsSecretKey(key) {
			return leaf(key, v, path)
		}
		switch x := v.(type) {
		case map[string]any:
			changed := false
			out := make(map[string]any, len(x))
			for k, e := range x {
				nv, c := visit(k, e, append(append([]string{}, path...), k))
				out[k], changed = nv, changed || c
			}
			return out, changed
		case []any:
			changed := false
			out := make([]any, len(x))
			for i, e := range x {
				nv, c := visit("", e, append(append([]string{}, path...), fmt.Sprint(i)))
				out[i], changed = nv, changed || c
			}
			return out, changed
		default:
			return leaf(key, v, path)
		}
	}
	return visit("", doc, path)
}

// maskEntry is what a config entry shows: the mask for a secret key (a
// value made only of references is shown as written: it names where the
// secret is, not the secret), else the value with its secret parts masked.
func maskEntry(k, v string) string {
	if IsSecretKey(k) && v != "" && !onlyReferences(v) {
		return Masked
	}
	return MaskValue(v)
}

// Masked returns a copy with secret values, and the secret parts of other
// values, replaced by Masked.
func (c Config) Masked() Config {
	out := c.Clone()
	for _, kv := range out {
		for k, v := range kv {
			kv[k] = maskEntry(k, v)
		}
	}
	return out
}

// MaskParams masks a call's parameters (as Config.Masked masks a config's
// entries) for the audit log.
func MaskParams(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = maskEntry(k, v)
	}
	return out
}

// valueSecrets lists the secret parts of one value, in order.
func valueSecrets(k, v string) []string {
	if v == "" || onlyReferences(v) {
		return nil
	}
	if IsSecretKey(k) {
		return []string{v}
	}
	if doc, ok := decodeJSON(v); ok {
		var out []string
		walkJSON(doc, nil, func(key string, leaf any, _ []string) (any, bool) {
			switch s := leaf.(type) {
			case string:
				out = append(out, valueSecrets(key, s)...)
			case nil:
			default:
				if key != "" && IsSecretKey(key) {
					out = append(out, strings.TrimSpace(encodeJSON(s)))
				}
			}
			return leaf, false
		})
		return out
	}
	if !strings.ContainsAny(v, "@=:") {
		return nil // no pattern can match (MaskValue)
	}
	var out []string
	for _, re := range secretPatterns {
		for _, g := range re.FindAllStringSubmatch(v, -1) {
			if g[2] != "" && g[2] != Masked && !onlyReferences(g[2]) {
				out = append(out, g[2])
			}
		}
	}
	return out
}

// Secrets lists the secret strings of a config: the values of secret keys
// and the secret parts of other values. A Scrubber removes them from text.
func (c Config) Secrets() []string {
	var out []string
	for _, kv := range c {
		for k, v := range kv {
			out = append(out, valueSecrets(k, v)...)
		}
	}
	return out
}

// Unmask returns c (a config write: a create's config, an update's patch)
// with every mask sent back replaced by what stored holds there: a secret
// key whose value is the mask, a value equal to the stored value's masked
// form, and the masked URL/DSN passwords and JSON secrets of a value whose
// stored value has them. A mask that stands for nothing stored is refused:
// the mask is never stored as a secret.
func (c Config) Unmask(stored Config) (Config, error) {
	out := c.Clone()
	for s, kv := range out {
		for k, v := range kv {
			if !strings.Contains(v, Masked) {
				continue
			}
			old, had := stored[s][k]
			switch {
			case had && v == maskEntry(k, old):
				kv[k] = old
				continue
			case had:
				v = unmaskValue(v, old)
				kv[k] = v
			}
			if (IsSecretKey(k) && v == Masked) || maskedSlots(v) > 0 {
				return nil, fmt.Errorf("%w: %s.%s holds the mask %s where no secret is stored to keep; send the real value (or leave the key out to keep the stored one)",
					ErrInvalidArgument, s, k, Masked)
			}
		}
	}
	return out, nil
}

// unmaskValue puts old's secrets back into v where v holds the mask: the
// JSON secrets at the same paths, or the URL/DSN passwords in order.
func unmaskValue(v, old string) string {
	if doc, ok := decodeJSON(v); ok {
		oldDoc, ok := decodeJSON(old)
		if !ok {
			return v
		}
		out, changed := walkJSON(doc, nil, func(_ string, leaf any, path []string) (any, bool) {
			s, isStr := leaf.(string)
			if !isStr || !strings.Contains(s, Masked) {
				return leaf, false
			}
			prev, found := jsonAt(oldDoc, path)
			if !found {
				return leaf, false
			}
			if s == Masked {
				return prev, true
			}
			if ps, ok := prev.(string); ok {
				return unmaskValue(s, ps), true
			}
			return leaf, false
		})
		if !changed {
			return v
		}
		return encodeJSON(out)
	}
	for _, re := range secretPatterns {
		var olds []string
		for _, g := range re.FindAllStringSubmatch(old, -1) {
			olds = append(olds, g[2])
		}
		i := 0
		v = re.ReplaceAllStringFunc(v, func(m string) string {
			g := re.FindStringSubmatch(m)
			defer func() { i++ }()
			if g[2] != Masked || i >= len(olds) {
				return m
			}
			return g[1] + olds[i] + g[3]
		})
	}
	return v
}

func jsonAt(doc any, path []string) (any, bool) {
	for _, p := range path {
		switch x := doc.(type) {
		case map[string]any:
			v, ok := x[p]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			doc = x[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

// maskedSlots counts the masks standing where a secret goes in v.
func maskedSlots(v string) int {
	n := 0
	if doc, ok := decodeJSON(v); ok {
		walkJSON(doc, nil, func(key string, leaf any, _ []string) (any, bool) {
			if s, isStr := leaf.(string); isStr && ((key != "" && IsSecretKey(key) && s == Masked) || maskedSlots(s) > 0) {
				n++
			}
			return leaf, false
		})
		return n
	}
	for _, re := range secretPatterns {
		for _, g := range re.FindAllStringSubmatch(v, -1) {
			if g[2] == Masked {
				n++
			}
		}
	}
	return n
}

// minScrubLen is the shortest secret a Scrubber replaces by value: a
// shorter one would garble messages (every "a" of a password "a"). Such
// secrets are still masked by key and by their place in a URL or DSN.
const minScrubLen = 4

// Scrubber removes secrets from free text (error messages, log lines): the
// known secret strings of a task (its config's Secrets and what its
// references resolved to), their URL-escaped forms, and anything shaped
// like a URL/DSN password or a password=... pair. The zero value and nil
// scrub by shape only.
type Scrubber struct {
	secrets []string // longest first
}

// NewScrubber returns a scrubber of the given secret strings.
func NewScrubber(secrets ...string) *Scrubber {
	seen := map[string]bool{}
	s := &Scrubber{}
	for _, v := range secrets {
		forms := []string{v, url.QueryEscape(v), url.PathEscape(v), strings.TrimSpace(v)}
		if u, err := url.PathUnescape(v); err == nil {
			forms = append(forms, u)
		}
		for _, form := range forms {
			if len(form) >= minScrubLen && form != Masked && !seen[form] {
				seen[form] = true
				s.secrets = append(s.secrets, form)
			}
		}
	}
	sort.Slice(s.secrets, func(i, j int) bool { return len(s.secrets[i]) > len(s.secrets[j]) })
	return s
}

// ScrubberOf is the scrubber of a config's secrets plus extra ones (what
// its references resolved to).
func ScrubberOf(c Config, extra ...string) *Scrubber {
	return NewScrubber(append(c.Secrets(), extra...)...)
}

// String scrubs text.
func (s *Scrubber) String(text string) string {
	if s != nil {
		for _, v := range s.secrets {
			text = strings.ReplaceAll(text, v, Masked)
		}
	}
	return MaskValue(text)
}

// Details scrubs the free text of error details.
func (s *Scrubber) Details(ds []ErrorDetail) []ErrorDetail {
	if ds == nil {
		return nil
	}
	out := make([]ErrorDetail, len(ds))
	for i, d := range ds {
		d.Message, d.Reason, d.Proposal = s.String(d.Message), s.String(d.Reason), s.String(d.Proposal)
		if d.Stderr != nil {
			lines := make([]string, len(d.Stderr))
			for j, l := range d.Stderr {
				lines[j] = s.String(l)
			}
			d.Stderr = lines
		}
		out[i] = d
	}
	return out
}

// Error is err's text, scrubbed.
func (s *Scrubber) Error(err error) string {
	if err == nil {
		return ""
	}
	return s.String(err.Error())
}

// References: ${env:NAME} and ${file:/absolute/path}, whole values or
// parts of one (mysql://u:${env:DB_PW}@h/db).
var (
	referenceRE = regexp.MustCompile(`\$\{(env|file):([^}]*)\}`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// errSecretUnresolved: a ${env:} or ${file:} reference of a task's config
// names nothing readable on the node that starts it. It never reaches an
// API answer as such: the runner turns it into an error detail with code
// CodeSecretUnresolved, and a pullback's guard rails answer INVALID_CONFIG.
var errSecretUnresolved = errors.New("secret reference unresolved")

// maxSecretFile bounds what a ${file:} reference reads.
const maxSecretFile = 64 << 10

// referencePlaceholder stands for every reference when a config is
// validated: it is a valid number, port, host, boolean and password, so
// the connector factories (which validate without I/O) accept a value
// that will only be known at start.
const referencePlaceholder = "1"

func onlyReferences(v string) bool {
	return strings.Contains(v, "${") && strings.TrimSpace(referenceRE.ReplaceAllString(v, "")) == "" && referenceRE.MatchString(v)
}

// CheckReferences checks the grammar of the references in c: an
// environment variable name, or an absolute clean path.
func (c Config) CheckReferences() error {
	for s, kv := range c {
		for k, v := range kv {
			for _, g := range referenceRE.FindAllStringSubmatch(v, -1) {
				switch g[1] {
				case "env":
					if !envNameRE.MatchString(g[2]) {
						return fmt.Errorf("%w: %s.%s: ${env:%s} must name an environment variable (letters, digits, _)", ErrInvalidArgument, s, k, g[2])
					}
				case "file":
					if !filepath.IsAbs(g[2]) || filepath.Clean(g[2]) != g[2] {
						return fmt.Errorf("%w: %s.%s: ${file:%s} must name an absolute, clean path", ErrInvalidArgument, s, k, g[2])
					}
				}
			}
		}
	}
	return nil
}

// WithPlaceholders returns a copy with every reference replaced by a
// placeholder, for validating a config without resolving it.
func (c Config) WithPlaceholders() Config {
	out := c.Clone()
	for _, kv := range out {
		for k, v := range kv {
			kv[k] = referenceRE.ReplaceAllString(v, referencePlaceholder)
		}
	}
	return out
}

// Resolver reads what references name.
type Resolver interface {
	LookupEnv(name string) (string, bool)
	ReadFile(path string) ([]byte, error)
}

// OSResolver resolves references from this process's environment and
// file system: the runner's node, at start.
var OSResolver Resolver = osResolver{}

type osResolver struct{}

func (osResolver) LookupEnv(name string) (string, bool) { return os.LookupEnv(name) }

func (osResolver) ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	return b, nil
}

// ResolveReferences returns a copy of c with its references replaced by
// what they name (a file's content without its final newline), and the
// resolved strings, which are secrets to scrub. An error names the entry
// and the reference, never a value.
func (c Config) ResolveReferences(r Resolver) (Config, []string, error) {
	out := c.Clone()
	var resolved []string
	for s, kv := range out {
		for k, v := range kv {
			if !referenceRE.MatchString(v) {
				continue
			}
			var rerr error
			nv := referenceRE.ReplaceAllStringFunc(v, func(m string) string {
				g := referenceRE.FindStringSubmatch(m)
				if rerr != nil {
					return m
				}
				var val string
				switch g[1] {
				case "env":
					e, ok := r.LookupEnv(g[2])
					if !ok {
						rerr = fmt.Errorf("%w: %s.%s: environment variable %s is not set on this node", errSecretUnresolved, s, k, g[2])
						return m
					}
					val = e
				case "file":
					b, err := r.ReadFile(g[2])
					if err != nil {
						rerr = fmt.Errorf("%w: %s.%s: reading %s: %v", errSecretUnresolved, s, k, g[2], scrubPathError(err))
						return m
					}
					val = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
				}
				resolved = append(resolved, val)
				return val
			})
			if rerr != nil {
				return nil, nil, rerr
			}
			kv[k] = nv
		}
	}
	return out, resolved, nil
}

// scrubPathError keeps the cause of a file error (not found, permission
// denied) without anything read.
func scrubPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "cannot be read"
}

// Wrap returns err with its text scrubbed; errors.Is and As still see
// through it to err.
func (s *Scrubber) Wrap(err error) error {
	if err == nil {
		return nil
	}
	msg := s.Error(err)
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
