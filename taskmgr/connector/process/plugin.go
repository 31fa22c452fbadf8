package process

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Plugin is a connector program an admin declared in a manifest: the only
// programs a process task can run. A task names one (source.plugin); it
// never gives an argv of its own.
type Plugin struct {
	// Name is what tasks refer to.
	Name string `yaml:"name"`
	// Command is the argv; its program is an absolute path.
	Command []string `yaml:"command"`
	// Env names variables of cm's environment passed to the program as
	// they are; nothing else of cm's environment reaches it.
	Env []string `yaml:"env,omitempty"`
	// Workdir is the program's working directory (default: cm's).
	Workdir string `yaml:"workdir,omitempty"`
}

var (
	pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks a manifest without I/O.
func (p Plugin) Validate() error {
	if !pluginName.MatchString(p.Name) {
		return fmt.Errorf("name %q: must be 1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", p.Name)
	}
	if len(p.Command) == 0 {
		return errors.New(`command is required: the argv as a list, e.g. ["/opt/cm/plugins/counter", "--verbose"]`)
	}
	if !filepath.IsAbs(p.Command[0]) {
		return fmt.Errorf("command[0] %q: must be an absolute path (children get no PATH of cm's to search)", p.Command[0])
	}
	for i, a := range p.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("command[%d] contains a NUL byte", i)
		}
	}
	for _, e := range p.Env {
		if !envName.MatchString(e) {
			return fmt.Errorf("env %q: must be the name of a variable (letters, digits, '_')", e)
		}
		if e == taskEnv {
			return fmt.Errorf("env %q: cm sets it for every program", e)
		}
	}
	if p.Workdir != "" && !filepath.IsAbs(p.Workdir) {
		return fmt.Errorf("workdir %q: must be an absolute path", p.Workdir)
	}
	return nil
}

// ParseManifest reads one plugin manifest. Unknown keys are refused, so a
// misspelt one (envs, cmd) is not silently ignored.
func ParseManifest(b []byte) (Plugin, error) {
	var p Plugin
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return p, errors.New("the manifest is empty")
		}
		return p, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return p, errors.New("a manifest declares one plugin: more than one YAML document")
	}
	return p, p.Validate()
}

// LoadDir reads every DIR/*.yaml as one plugin manifest. An invalid
// manifest, or two with the same name, refuse the whole directory with an
// error naming the file.
func LoadDir(dir string) ([]Plugin, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("plugin directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("plugin directory %s is not a directory", dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Plugin
	from := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("plugin manifest %s: %w", f, err)
		}
		p, err := ParseManifest(b)
		if err != nil {
			return nil, fmt.Errorf("plugin manifest %s: %w", f, err)
		}
		if prev, ok := from[p.Name]; ok {
			return nil, fmt.Errorf("plugin manifest %s: plugin %q is already declared by %s", f, p.Name, prev)
		}
		from[p.Name] = f
		out = append(out, p)
	}
	return out, nil
}

// Plugins is the set of declared plugins a process source looks its
// program up in. It is read when a task's connectors are built (at create,
// update and every start), so a reload changes what the next start runs;
// a running program is not touched.
type Plugins struct {
	dir string
	// lookupEnv reads cm's environment for the variables a manifest
	// passes through; nil passes none.
	lookupEnv func(string) (string, bool)
	mu        sync.RWMutex
	set       map[string]Plugin
}

// NewPlugins returns the set of list, whose programs read the variables
// they declare through lookupEnv (os.LookupEnv in cm serve). It refuses an
// invalid plugin or a name declared twice.
func NewPlugins(lookupEnv func(string) (string, bool), list ...Plugin) (*Plugins, error) {
	p := &Plugins{lookupEnv: lookupEnv}
	if err := p.replace(list); err != nil {
		return nil, err
	}
	return p, nil
}

// LoadPlugins loads the manifests of dir (see NewPlugins for lookupEnv);
// an empty dir means no plugins.
func LoadPlugins(dir string, lookupEnv func(string) (string, bool)) (*Plugins, error) {
	p := &Plugins{dir: dir, lookupEnv: lookupEnv, set: map[string]Plugin{}}
	if dir == "" {
		return p, nil
	}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the directory again. On error the set is left as it was.
func (p *Plugins) Reload() error {
	if p.dir == "" {
		return nil
	}
	list, err := LoadDir(p.dir)
	if err != nil {
		return err
	}
	return p.replace(list)
}

func (p *Plugins) replace(list []Plugin) error {
	set := make(map[string]Plugin, len(list))
	for _, pl := range list {
		if err := pl.Validate(); err != nil {
			return fmt.Errorf("plugin %q: %w", pl.Name, err)
		}
		if _, dup := set[pl.Name]; dup {
			return fmt.Errorf("plugin %q is declared twice", pl.Name)
		}
		pl.Command = append([]string(nil), pl.Command...)
		pl.Env = append([]string(nil), pl.Env...)
		set[pl.Name] = pl
	}
	p.mu.Lock()
	p.set = set
	p.mu.Unlock()
	return nil
}

// Lookup returns the plugin called name.
func (p *Plugins) Lookup(name string) (Plugin, bool) {
	if p == nil {
		return Plugin{}, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	pl, ok := p.set[name]
	return pl, ok
}

// Names lists the declared plugins, sorted.
func (p *Plugins) Names() []string {
	if p == nil {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.set))
	for n := range p.set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Dir is the directory the manifests are read from ("" for none).
func (p *Plugins) Dir() string {
	if p == nil {
		return ""
	}
	return p.dir
}

// defaultPath is the PATH of a program whose manifest does not pass cm's
// through: the system directories, so a shell script finds its tools, and
// nothing of the user cm runs as.
const defaultPath = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"

// taskEnv names the variable that tells a program its task.
const taskEnv = "CM_TASK"

// environ is the whole environment of pl's program running task: CM_TASK,
// the variables its manifest passes through that cm has, and PATH (cm's
// when the manifest passes it, else defaultPath). Nothing else of cm's
// environment (its store DSN, CM_* settings, secrets) reaches the program.
func (p *Plugins) environ(pl Plugin, task string) []string {
	env := []string{taskEnv + "=" + task}
	path := false
	for _, name := range pl.Env {
		if p == nil || p.lookupEnv == nil {
			break
		}
		if v, ok := p.lookupEnv(name); ok {
			env = append(env, name+"="+v)
			path = path || name == "PATH"
		}
	}
	if !path {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}
