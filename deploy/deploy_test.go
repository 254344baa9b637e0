// Package deploy_test keeps the Kubernetes manifests of this directory true to the code.
// Nothing here reaches a cluster: the manifests are read as kubectl would get them, the
// configuration each container would load is loaded with the services' own loader, and
// what the manifests claim about the processes (ports, probes, drain time, the consumer
// KEDA watches, the files they read) is compared with what the code does.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/secret"
)

// natsServerConf is the production nats-server configuration, relative to this package;
// KEDA reads the monitoring port it opens.
const natsServerConf = "../config/nats-server.conf"

// webhookAttemptSlack is how far past webhook_timeout one webhook delivery attempt may
// run (internal/webhook/deliverer.go, deliver): a worker draining with the webhooks role
// finishes the attempts in hand, so its grace period must cover one.
const webhookAttemptSlack = 30 * time.Second

// closeSlack is how long a service may take to close its connections once its drain is
// done: a NATS drain of at most drainTimeout + 1 s (internal/queue/conn.go, Close) and
// 5 s for MongoDB (internal/service/service.go, deps.close).
const closeSlack = 16 * time.Second

// secretLooking matches the names of variables and keys whose values are secrets.
var secretLooking = regexp.MustCompile(`SECRET|KEY|CREDS|PASSWORD|TOKEN`)

// The parts of the Kubernetes objects the tests read. Fields not listed are ignored: the
// API server validates the rest when the manifests are applied.
type (
	meta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	header struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
	}
	labelSelector struct {
		MatchLabels      map[string]string `yaml:"matchLabels"`
		MatchExpressions []any             `yaml:"matchExpressions"`
	}
	deployment struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Replicas *int          `yaml:"replicas"`
			Selector labelSelector `yaml:"selector"`
			Template struct {
				Metadata meta    `yaml:"metadata"`
				Spec     podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		AutomountServiceAccountToken  *bool           `yaml:"automountServiceAccountToken"`
		EnableServiceLinks            *bool           `yaml:"enableServiceLinks"`
		TerminationGracePeriodSeconds *int64          `yaml:"terminationGracePeriodSeconds"`
		HostNetwork                   bool            `yaml:"hostNetwork"`
		HostPID                       bool            `yaml:"hostPID"`
		HostIPC                       bool            `yaml:"hostIPC"`
		SecurityContext               securityContext `yaml:"securityContext"`
		InitContainers                []container     `yaml:"initContainers"`
		Containers                    []container     `yaml:"containers"`
		Volumes                       []volume        `yaml:"volumes"`
	}
	securityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool  `yaml:"privileged"`
		Capabilities             *struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}
	container struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []envVar `yaml:"env"`
		EnvFrom []any    `yaml:"envFrom"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Lifecycle      *struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int64 `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext securityContext `yaml:"securityContext"`
		VolumeMounts    []volumeMount   `yaml:"volumeMounts"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef     *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef  *keyRef `yaml:"configMapKeyRef"`
			FieldRef         any     `yaml:"fieldRef"`
			ResourceFieldRef any     `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	}
	keyRef struct {
		Name string `yaml:"name"`
		Key  string `yaml:"key"`
	}
	probe struct {
		HTTPGet *struct {
			Path   string      `yaml:"path"`
			Port   intOrString `yaml:"port"`
			Scheme string      `yaml:"scheme"`
		} `yaml:"httpGet"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string      `yaml:"secretName"`
			Items      []keyToPath `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name  string      `yaml:"name"`
			Items []keyToPath `yaml:"items"`
		} `yaml:"configMap"`
		// Other holds any other volume source (emptyDir, hostPath, ...).
		Other map[string]any `yaml:",inline"`
	}
	keyToPath struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	}
	service struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Type     string            `yaml:"type"`
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string      `yaml:"name"`
				Port       int         `yaml:"port"`
				TargetPort intOrString `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	disruptionBudget struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			MinAvailable   *intOrString  `yaml:"minAvailable"`
			MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	scaledObject struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			ScaleTargetRef struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			MinReplicaCount *int `yaml:"minReplicaCount"`
			MaxReplicaCount *int `yaml:"maxReplicaCount"`
			CooldownPeriod  *int `yaml:"cooldownPeriod"`
			Triggers        []struct {
				Type     string            `yaml:"type"`
				Metadata map[string]string `yaml:"metadata"`
			} `yaml:"triggers"`
		} `yaml:"spec"`
	}
	kustomization struct {
		Resources          []string `yaml:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `yaml:"name"`
			Files []string `yaml:"files"`
		} `yaml:"configMapGenerator"`
		Images []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
			Digest  string `yaml:"digest"`
		} `yaml:"images"`
	}
)

// intOrString is a Kubernetes IntOrString: a port number or name, a count or percentage.
type intOrString struct{ s string }

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	v.s = n.Value
	return nil
}

// doc is one YAML document of a manifest file.
type doc struct {
	file string
	header
	node *yaml.Node
}

// manifests is this directory as kubectl apply -k reads it.
type manifests struct {
	docs []doc
	kust kustomization
	// manifestFiles are the YAML files other than kustomization.yaml and the inputs of
	// generators.
	manifestFiles []string
	// configMaps holds every ConfigMap's data by name, generated ones included.
	configMaps map[string]map[string]string
}

// load reads and parses every YAML file here; a file that does not parse fails the test.
func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	yml, err := filepath.Glob("*.yml")
	require.NoError(t, err)
	files = append(files, yml...) // kustomize takes either
	sort.Strings(files)
	m := &manifests{configMaps: map[string]map[string]string{}}
	raw := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		raw[f] = b
		// Every YAML file must parse, manifests or not: kubectl apply -k refuses the whole
		// directory over one broken document.
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 1; ; i++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s, document %d, does not parse: kubectl apply -k would apply nothing", f, i)
			if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
				continue // an empty document (a trailing ---)
			}
			d := doc{file: f, node: &n}
			require.NoError(t, n.Decode(&d.header), "%s, document %d", f, i)
			m.docs = append(m.docs, d)
		}
	}

	require.Contains(t, raw, "kustomization.yaml", "without kustomization.yaml, kubectl apply -k deploy/ does nothing")
	require.NoError(t, yaml.Unmarshal(raw["kustomization.yaml"], &m.kust))
	generated := map[string]bool{}
	for _, g := range m.kust.ConfigMapGenerator {
		data := map[string]string{}
		for _, f := range g.Files {
			key, file := path.Base(f), f
			if k, v, ok := strings.Cut(f, "="); ok {
				key, file = k, v
			}
			b, err := os.ReadFile(file)
			require.NoError(t, err, "configMapGenerator %s names %s, which kustomize cannot read", g.Name, file)
			data[key] = string(b)
			generated[file] = true
		}
		m.configMaps[g.Name] = data
	}
	for _, f := range files {
		if f != "kustomization.yaml" && !generated[f] {
			m.manifestFiles = append(m.manifestFiles, f)
		}
	}
	for _, d := range m.docs {
		if d.Kind != "ConfigMap" || !slices.Contains(m.manifestFiles, d.file) {
			continue
		}
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		require.NoError(t, d.node.Decode(&cm), "%s: ConfigMap %s", d.file, d.Metadata.Name)
		m.configMaps[d.Metadata.Name] = cm.Data
	}
	return m
}

// objects decodes every manifest document of kind into T.
func objects[T any](t *testing.T, m *manifests, kind string) []T {
	t.Helper()
	var out []T
	for _, d := range m.docs {
		if d.Kind != kind || !slices.Contains(m.manifestFiles, d.file) {
			continue
		}
		var v T
		require.NoError(t, d.node.Decode(&v), "%s: %s %s does not decode as a %s", d.file, kind, d.Metadata.Name, kind)
		out = append(out, v)
	}
	return out
}

// process is one of our binaries as a Deployment's container would run it.
type process struct {
	deploy  deployment
	c       container
	service config.Service
	cfg     config.Config
}

// name says which process, for messages.
func (p process) name() string { return p.deploy.Metadata.Name + "/" + p.c.Name }

// pod is the pod spec the process runs in.
func (p process) pod() podSpec { return p.deploy.Spec.Template.Spec }

// processes returns every container of every Deployment with the configuration it would
// load. A configuration that config.Load refuses fails the test.
func processes(t *testing.T, m *manifests) []process {
	t.Helper()
	var out []process
	for _, d := range objects[deployment](t, m, "Deployment") {
		pod := d.Spec.Template.Spec
		require.NotEmpty(t, pod.Containers, "Deployment %s has no containers", d.Metadata.Name)
		for _, c := range pod.Containers {
			p := process{deploy: d, c: c}
			p.service = serviceOf(t, p)
			p.cfg = loadConfig(t, m, p)
			out = append(out, p)
		}
	}
	require.NotEmpty(t, out, "no Deployments: docs/design.md wants ingest and workers deployed")
	return out
}

// serviceOf tells from the container's command which service's configuration it loads.
func serviceOf(t *testing.T, p process) config.Service {
	t.Helper()
	require.NotEmpty(t, p.c.Command, "%s names no command: the image has no entrypoint (it holds both binaries), so the container would not start", p.name())
	switch path.Base(p.c.Command[0]) {
	case "ingest":
		return config.Ingest
	case "worker":
		if len(p.c.Args) > 0 && p.c.Args[0] == "reconcile" {
			return config.Reconcile
		}
		return config.Worker
	}
	t.Fatalf("%s runs %s; this test knows only the ingest and the worker", p.name(), p.c.Command[0])
	return ""
}

// loadConfig loads the configuration the process would: the file its --config (or
// BILLING_CONFIG) names, read from the ConfigMap mounted there, and its environment,
// with every secret replaced by a valid placeholder.
func loadConfig(t *testing.T, m *manifests, p process) config.Config {
	t.Helper()
	environ := environment(t, m, p)
	file := configPath(p.c)
	require.NotEmpty(t, file, "%s passes neither --config nor BILLING_CONFIG: it would run on the built-in defaults, NATS and MongoDB on 127.0.0.1", p.name())
	content, ok := mountedConfigMapFile(t, m, p, file)
	require.True(t, ok, "%s loads its configuration from %s, which no mounted ConfigMap provides: it would exit at start (reading config file)", p.name(), file)

	tmp := filepath.Join(t.TempDir(), "billing.yaml")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	cfg, err := config.Load(p.service, tmp, environ)
	require.NoError(t, err, "%s: config.Load refuses the configuration this container gets, so the pod would exit 2 at start and crash-loop", p.name())
	return cfg
}

// configPath returns the configuration file a container passes, or "".
func configPath(c container) string {
	for i, a := range c.Args {
		for _, flag := range []string{"-config", "--config"} {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v
			}
			if a == flag && i+1 < len(c.Args) {
				return c.Args[i+1]
			}
		}
	}
	for _, e := range c.Env {
		if e.Name == "BILLING_CONFIG" && e.ValueFrom == nil {
			return e.Value
		}
	}
	return ""
}

// mountedConfigMapFile returns the content of file as the container sees it, if a
// ConfigMap volume provides it.
func mountedConfigMapFile(t *testing.T, m *manifests, p process, file string) (string, bool) {
	t.Helper()
	mount, rel, ok := mountOf(p.c, file)
	if !ok {
		return "", false
	}
	v, ok := volumeNamed(p.pod(), mount.Name)
	if !ok || v.ConfigMap == nil {
		return "", false
	}
	key := rel
	for _, it := range v.ConfigMap.Items {
		if it.Path == rel {
			key = it.Key
		}
	}
	data, ok := m.configMaps[v.ConfigMap.Name]
	if !ok {
		return "", false
	}
	content, ok := data[key]
	return content, ok
}

// mountOf returns the volume mount that holds file, and the file's path inside it.
func mountOf(c container, file string) (volumeMount, string, bool) {
	for _, vm := range c.VolumeMounts {
		if vm.SubPath != "" {
			if file == vm.MountPath {
				return vm, vm.SubPath, true
			}
			continue
		}
		if rel, ok := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"); ok {
			return vm, rel, true
		}
	}
	return volumeMount{}, "", false
}

func volumeNamed(pod podSpec, name string) (volume, bool) {
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return volume{}, false
}

// placeholders are valid stand-ins for the variables that come from Secrets.
var placeholders = map[string]func() string{
	"BILLING_WEBHOOK_SECRET_KEY": secret.NewKey,
}

// environment returns the container's environment in os.Environ form.
func environment(t *testing.T, m *manifests, p process) []string {
	t.Helper()
	require.Empty(t, p.c.EnvFrom, "%s uses envFrom: which BILLING_* variables it sets is then invisible here and to a reviewer; list them under env", p.name())
	var environ []string
	for _, e := range p.c.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			placeholder, ok := placeholders[e.Name]
			require.True(t, ok, "%s takes %s from a Secret, and this test has no valid placeholder for it: add one to placeholders", p.name(), e.Name)
			environ = append(environ, e.Name+"="+placeholder())
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := m.configMaps[ref.Name][ref.Key]
			require.True(t, ok, "%s takes %s from ConfigMap %s key %s, which does not exist here: the pod would not start", p.name(), e.Name, ref.Name, ref.Key)
			environ = append(environ, e.Name+"="+v)
		default:
			require.False(t, strings.HasPrefix(e.Name, "BILLING_"), "%s sets %s from a field or resource reference, which this test cannot evaluate", p.name(), e.Name)
		}
	}
	return environ
}

// portOf returns the port number of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err, "address %q", addr)
	return n
}

// containerPort resolves a port given by number or by the name of a container port; 0
// when a name matches none.
func containerPort(c container, port intOrString) int {
	if n, err := strconv.Atoi(port.s); err == nil {
		return n
	}
	for _, cp := range c.Ports {
		if cp.Name == port.s {
			return cp.ContainerPort
		}
	}
	return 0
}

// listens returns the ports the process listens on: the API (ingest only) and admin.
func (p process) listens(t *testing.T) map[int]string {
	ports := map[int]string{portOf(t, p.cfg.AdminAddr): "admin_addr"}
	if p.service == config.Ingest {
		ports[portOf(t, p.cfg.HTTPAddr)] = "http_addr"
	}
	return ports
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	m := load(t)
	listed := slices.Clone(m.kust.Resources)
	sort.Strings(listed)
	assert.Equal(t, m.manifestFiles, listed,
		"kustomization.yaml resources must be exactly the manifest files here: a file left out is never applied, one listed but missing fails the apply")
	for _, d := range m.docs {
		if !slices.Contains(m.manifestFiles, d.file) {
			continue
		}
		assert.NotEmpty(t, d.APIVersion, "%s: a document without apiVersion is refused by kubectl", d.file)
		assert.NotEmpty(t, d.Kind, "%s: a document without kind is refused by kubectl", d.file)
		assert.NotEmpty(t, d.Metadata.Name, "%s: a %s without a name is refused by kubectl", d.file, d.Kind)
		assert.Empty(t, d.Metadata.Namespace, "%s: %s %s sets its own namespace; kustomization.yaml sets one for all", d.file, d.Kind, d.Metadata.Name)
	}
	assert.NotEmpty(t, m.kust.Images, "kustomization.yaml sets no image: the pods would pull the placeholder name")

	// Every image the containers name is replaced by kustomization.yaml's images.
	for _, p := range processes(t, m) {
		found := false
		for _, img := range m.kust.Images {
			found = found || (img.Name == p.c.Image && img.NewName != "" && (img.NewTag != "" || img.Digest != ""))
		}
		assert.True(t, found, "%s runs image %q, which kustomization.yaml's images does not map to a registry and tag: the kubelet would pull docker.io/library/%s", p.name(), p.c.Image, p.c.Image)
	}
}

// TestDeploymentsMatchTheirConfiguration checks each container against the configuration
// it loads: ports, probes, Services, metrics scraping, the files it reads, and the drain.
func TestDeploymentsMatchTheirConfiguration(t *testing.T) {
	t.Parallel()
	m := load(t)
	services := objects[service](t, m, "Service")
	for _, p := range processes(t, m) {
		t.Run(p.name(), func(t *testing.T) {
			listens := p.listens(t)
			admin := portOf(t, p.cfg.AdminAddr)

			// Ports.
			for _, cp := range p.c.Ports {
				_, ok := listens[cp.ContainerPort]
				assert.True(t, ok, "%s declares containerPort %d (%s), where the process does not listen (its config: %v)", p.name(), cp.ContainerPort, cp.Name, listens)
			}

			// Probes on the admin address.
			for _, pr := range []struct {
				name, path string
				probe      *probe
			}{
				{"readinessProbe", "/readyz", p.c.ReadinessProbe},
				{"livenessProbe", "/livez", p.c.LivenessProbe},
			} {
				if !assert.True(t, pr.probe != nil && pr.probe.HTTPGet != nil, "%s has no httpGet %s: Kubernetes would not know when the pod is %s", p.name(), pr.name, pr.path) {
					continue
				}
				get := pr.probe.HTTPGet
				assert.Equal(t, pr.path, get.Path, "%s %s asks the wrong path: the admin server answers /livez and /readyz", p.name(), pr.name)
				assert.Equal(t, admin, containerPort(p.c, get.Port), "%s %s asks port %q, but admin_addr is %s: the probe would fail and the pod never be ready (or be restarted forever)", p.name(), pr.name, get.Port.s, p.cfg.AdminAddr)
				assert.Contains(t, []string{"", "HTTP"}, get.Scheme, "%s %s uses %s: the admin server speaks plain HTTP even when the API serves TLS", p.name(), pr.name, get.Scheme)
			}

			// Prometheus scrapes /metrics on the admin port.
			ann := p.deploy.Spec.Template.Metadata.Annotations
			assert.Equal(t, "true", ann["prometheus.io/scrape"], "%s: pods not annotated prometheus.io/scrape are never scraped", p.name())
			assert.Equal(t, strconv.Itoa(admin), ann["prometheus.io/port"], "%s: prometheus.io/port must be admin_addr's port %d, or Prometheus scrapes the wrong port", p.name(), admin)
			assert.Equal(t, "/metrics", ann["prometheus.io/path"], "%s: metrics are served at /metrics", p.name())

			// The API is reachable through a Service; every Service port targets a listener.
			labels := p.deploy.Spec.Template.Metadata.Labels
			assert.True(t, selects(p.deploy.Spec.Selector.MatchLabels, labels), "Deployment %s's selector does not match its pod labels: the API server refuses it", p.deploy.Metadata.Name)
			targets := map[int]bool{}
			for _, s := range services {
				if !selects(s.Spec.Selector, labels) {
					continue
				}
				for _, sp := range s.Spec.Ports {
					target := sp.TargetPort
					if target.s == "" {
						target.s = strconv.Itoa(sp.Port)
					}
					n := containerPort(p.c, target)
					_, ok := listens[n]
					assert.True(t, ok, "Service %s port %d targets %q, where %s does not listen (its config: %v): clients would get connection refused", s.Metadata.Name, sp.Port, target.s, p.name(), listens)
					targets[n] = true
				}
			}
			if p.service == config.Ingest {
				api := portOf(t, p.cfg.HTTPAddr)
				assert.True(t, targets[api], "no Service reaches %s's API port %d (http_addr): the load balancer would have nothing to send merchants to", p.name(), api)
				assert.True(t, targets[admin], "no Service reaches %s's admin port %d: keep one for /metrics and debugging, inside the cluster", p.name(), admin)
			}

			// The files the process opens are mounted.
			for _, f := range filesRead(t, p) {
				assert.True(t, filepath.IsAbs(f.path), "%s: %s is %q, relative to a working directory the image does not define", p.name(), f.key, f.path)
				vm, _, ok := mountOf(p.c, f.path)
				if !assert.True(t, ok, "%s reads %s (%s), but no volume is mounted there: it would fail at start", p.name(), f.path, f.key) {
					continue
				}
				v, ok := volumeNamed(p.pod(), vm.Name)
				assert.True(t, ok && (v.Secret != nil || v.ConfigMap != nil), "%s reads %s (%s) from volume %s, which is not a Secret or ConfigMap", p.name(), f.path, f.key, vm.Name)
			}

			// The drain finishes before SIGKILL.
			pod := p.pod()
			grace := 30 * time.Second // Kubernetes' default
			if pod.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			}
			var preStop time.Duration
			if lc := p.c.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
				preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
			}
			assert.Greater(t, grace, preStop+p.cfg.ShutdownTimeout+closeSlack,
				"%s: terminationGracePeriodSeconds (%s) must exceed the preStop sleep (%s), shutdown_timeout (%s) and closing the connections (%s), or SIGKILL cuts the drain short and in-flight work is redone or cut off",
				p.name(), grace, preStop, p.cfg.ShutdownTimeout, closeSlack)
			if p.service == config.Worker && slices.Contains(p.cfg.WorkerRoles, config.RoleWebhooks) {
				attempt := p.cfg.WebhookTimeout + webhookAttemptSlack
				assert.Greater(t, grace, attempt+closeSlack,
					"%s: terminationGracePeriodSeconds (%s) must exceed one webhook attempt, webhook_timeout + %s (%s), which a draining worker finishes, and closing the connections (%s): SIGKILL mid-attempt makes the endpoint receive the event twice",
					p.name(), grace, webhookAttemptSlack, attempt, closeSlack)
			}
			if p.service == config.Ingest {
				assert.Positive(t, preStop, "%s has no preStop sleep: the ingest closes its listener on SIGTERM, before load balancers stop sending to the pod, so those requests would be refused", p.name())
			}
		})
	}
}

// fileRead is a file a process opens, and the setting that names it.
type fileRead struct{ key, path string }

// filesRead returns the files the process opens at start.
func filesRead(t *testing.T, p process) []fileRead {
	t.Helper()
	var files []fileRead
	add := func(key, path string) {
		if path != "" {
			files = append(files, fileRead{key, path})
		}
	}
	add("nats_creds", p.cfg.NATSCreds)
	if p.service == config.Ingest {
		add("tls_cert_file", p.cfg.TLSCertFile)
		add("tls_key_file", p.cfg.TLSKeyFile)
		add("auth_jwks_file", p.cfg.AuthJWKSFile)
	}
	u, err := url.Parse(p.cfg.MongoURI)
	require.NoError(t, err, "%s: mongo_uri does not parse", p.name())
	for _, opt := range []string{"tlsCAFile", "tlsCertificateFile", "tlsPrivateKeyFile", "tlsCertificateKeyFile"} {
		add("mongo_uri "+opt, u.Query().Get(opt))
	}
	return files
}

// TestConfigurationIsProduction checks the configuration against docs/design.md's production
// topology.
func TestConfigurationIsProduction(t *testing.T) {
	t.Parallel()
	m := load(t)
	for _, p := range processes(t, m) {
		cfg := p.cfg
		assert.GreaterOrEqual(t, cfg.StreamReplicas, 3, "%s: stream_replicas %d; docs/design.md wants streams and buckets with 3 replicas, or one lost NATS server loses accepted charges", p.name(), cfg.StreamReplicas)
		urls := strings.Split(cfg.NATSURL, ",")
		assert.GreaterOrEqual(t, len(urls), cfg.StreamReplicas, "%s: nats_url lists %d servers for streams of %d replicas: with the listed ones down, the service cannot reach the others at start", p.name(), len(urls), cfg.StreamReplicas)

		u, err := url.Parse(cfg.MongoURI)
		if assert.NoError(t, err, "%s: mongo_uri", p.name()) {
			q := u.Query()
			assert.True(t, u.Scheme == "mongodb+srv" || q.Get("replicaSet") != "", "%s: mongo_uri names no replicaSet: docs/design.md wants a replica set", p.name())
			assert.Equal(t, "majority", q.Get("w"), "%s: mongo_uri must say w=majority: an acknowledged write could otherwise be rolled back after a failover", p.name())
			assert.NotEqual(t, "false", q.Get("retryWrites"), "%s: mongo_uri turns retryable writes off", p.name())
			assert.NotEqual(t, "false", q.Get("journal"), "%s: mongo_uri turns journaling off", p.name())
		}
		assert.Equal(t, "json", cfg.LogFormat, "%s: log_format should be json for the log pipeline", p.name())
		assert.Equal(t, "http", cfg.Processor, "%s: processor %q; the simulated processor moves no money", p.name(), cfg.Processor)
		assert.False(t, cfg.WebhookAllowPrivate, "%s: webhook_allow_private lets merchants point webhooks at the cluster's own addresses", p.name())
	}
}

// TestScaledObjectFollowsTheConsumer checks that KEDA watches the stream and consumer the
// workers actually use, with settings that fit the workers.
func TestScaledObjectFollowsTheConsumer(t *testing.T) {
	t.Parallel()
	m := load(t)
	procs := processes(t, m)
	scaled := objects[scaledObject](t, m, "ScaledObject")
	require.NotEmpty(t, scaled, "no ScaledObject: docs/design.md has the workers scaled on consumer lag")
	monitoring := natsMonitoringPort(t)

	for _, so := range scaled {
		name := "ScaledObject " + so.Metadata.Name
		ref := so.Spec.ScaleTargetRef
		assert.Contains(t, []string{"", "Deployment"}, ref.Kind, "%s scales a %s; the workers are a Deployment", name, ref.Kind)
		var target *process
		for i, p := range procs {
			if p.deploy.Metadata.Name == ref.Name {
				target = &procs[i]
			}
		}
		require.NotNil(t, target, "%s scales Deployment %q, which does not exist here: KEDA would scale nothing", name, ref.Name)
		require.Equal(t, config.Worker, target.service, "%s scales %s, which does not run the worker", name, target.name())
		assert.Contains(t, target.cfg.WorkerRoles, config.RoleCharges, "%s scales %s on CHARGES, but its worker_roles leave out charges: added replicas would not consume it", name, target.name())
		assert.Nil(t, target.deploy.Spec.Replicas, "Deployment %s sets replicas although KEDA owns the count: every kubectl apply would reset it", ref.Name)

		require.NotNil(t, so.Spec.MinReplicaCount, "%s sets no minReplicaCount: KEDA's default 0 stops every worker when CHARGES is empty", name)
		require.NotNil(t, so.Spec.MaxReplicaCount, "%s sets no maxReplicaCount: KEDA's default is 100", name)
		minimum, maximum := *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount
		if slices.Contains(target.cfg.WorkerRoles, config.RoleWebhooks) {
			assert.GreaterOrEqual(t, minimum, 1, "%s may scale %s to zero, which also runs the webhooks role: with CHARGES empty, webhook retries and fan-out would stop", name, target.name())
		}
		assert.GreaterOrEqual(t, maximum, minimum, "%s: maxReplicaCount below minReplicaCount", name)
		assert.NotNil(t, so.Spec.CooldownPeriod, "%s sets no cooldownPeriod", name)

		charges := 0
		for _, tr := range so.Spec.Triggers {
			if !assert.Equal(t, "nats-jetstream", tr.Type, "%s has a %s trigger; this test knows only nats-jetstream", name, tr.Type) {
				continue
			}
			md := tr.Metadata
			switch md["stream"] {
			case queue.StreamCharges:
				charges++
				assert.Equal(t, queue.CommandConsumerName, md["consumer"],
					"%s watches consumer %q of %s, but the workers consume through %q (queue.CommandConsumerName): KEDA would see no lag, or a stale consumer's, and never scale", name, md["consumer"], queue.StreamCharges, queue.CommandConsumerName)
			default:
				assert.Fail(t, "unknown stream", "%s watches stream %q; the workers' commands are in %s (queue.StreamCharges), and this test knows no other trigger", name, md["stream"], queue.StreamCharges)
			}
			assert.NotEmpty(t, md["account"], "%s: account is required (\"$G\" when the server has no accounts)", name)
			host, port, err := net.SplitHostPort(md["natsServerMonitoringEndpoint"])
			if assert.NoError(t, err, "%s: natsServerMonitoringEndpoint must be host:port", name) {
				assert.NotEmpty(t, host, "%s: natsServerMonitoringEndpoint has no host", name)
				assert.Equal(t, monitoring, port, "%s: natsServerMonitoringEndpoint's port must be the monitoring port of %s (http:), or KEDA reads nothing", name, natsServerConf)
			}
			lag, err := strconv.Atoi(md["lagThreshold"])
			if assert.NoError(t, err, "%s: lagThreshold must be an integer in a string", name) {
				assert.GreaterOrEqual(t, lag, target.cfg.WorkerBatch,
					"%s: lagThreshold %d is below worker_batch %d: the commands one worker fetches at once would already call for another replica, and the workers would scale out on work in hand", name, lag, target.cfg.WorkerBatch)
			}
		}
		assert.Equal(t, 1, charges, "%s must have one trigger on %s", name, queue.StreamCharges)
	}
}

// natsMonitoringPort returns the monitoring port nats-server.conf opens.
func natsMonitoringPort(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(natsServerConf)
	require.NoError(t, err)
	if mm := regexp.MustCompile(`(?m)^\s*http\s*[:=]\s*"?[^\s"#]*:(\d+)`).FindSubmatch(b); mm != nil {
		return string(mm[1])
	}
	if mm := regexp.MustCompile(`(?m)^\s*http_port\s*[:=]\s*(\d+)`).FindSubmatch(b); mm != nil {
		return string(mm[1])
	}
	t.Fatalf("%s opens no monitoring port (http:), which KEDA's nats-jetstream scaler reads", natsServerConf)
	return ""
}

// TestDisruptionBudgets checks that each Deployment keeps at least two replicas and has a
// PodDisruptionBudget that lets a node drain proceed one pod at a time.
func TestDisruptionBudgets(t *testing.T) {
	t.Parallel()
	m := load(t)
	budgets := objects[disruptionBudget](t, m, "PodDisruptionBudget")
	scaled := objects[scaledObject](t, m, "ScaledObject")
	for _, d := range objects[deployment](t, m, "Deployment") {
		name := d.Metadata.Name
		minimum := 1 // a Deployment's default
		if d.Spec.Replicas != nil {
			minimum = *d.Spec.Replicas
		}
		for _, so := range scaled {
			if so.Spec.ScaleTargetRef.Name == name && so.Spec.MinReplicaCount != nil {
				minimum = *so.Spec.MinReplicaCount
			}
		}
		assert.GreaterOrEqual(t, minimum, 2, "%s runs as few as %d replicas: every rollout or node drain would stop it", name, minimum)

		var matching []disruptionBudget
		for _, b := range budgets {
			if selects(b.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
				matching = append(matching, b)
			}
		}
		if !assert.Len(t, matching, 1, "%s needs exactly one PodDisruptionBudget selecting its pods: with none, a node drain may evict them all at once; with two, evictions are refused", name) {
			continue
		}
		b := matching[0]
		switch {
		case b.Spec.MaxUnavailable != nil:
			n, err := strconv.Atoi(b.Spec.MaxUnavailable.s)
			assert.True(t, err != nil || n >= 1, "PodDisruptionBudget %s allows no disruption: node drains would hang", b.Metadata.Name)
			assert.NotEqual(t, "0%", b.Spec.MaxUnavailable.s, "PodDisruptionBudget %s allows no disruption: node drains would hang", b.Metadata.Name)
		case b.Spec.MinAvailable != nil:
			n, err := strconv.Atoi(b.Spec.MinAvailable.s)
			assert.True(t, err != nil || n < minimum, "PodDisruptionBudget %s wants %d available of %d replicas: node drains would hang", b.Metadata.Name, n, minimum)
		default:
			assert.Fail(t, "empty budget", "PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", b.Metadata.Name)
		}
	}
}

// TestPodsAreHardened checks every container's security settings.
func TestPodsAreHardened(t *testing.T) {
	t.Parallel()
	m := load(t)
	for _, d := range objects[deployment](t, m, "Deployment") {
		pod := d.Spec.Template.Spec
		name := d.Metadata.Name
		assert.True(t, is(pod.AutomountServiceAccountToken, false), "%s: automountServiceAccountToken must be false; the services never call the Kubernetes API, and a mounted token is a credential for whoever gets into the pod", name)
		assert.True(t, is(pod.EnableServiceLinks, false), "%s: enableServiceLinks must be false, or every Service in the namespace puts BILLING_<NAME>_* variables where the configuration reads BILLING_*", name)
		assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC, "%s shares a host namespace", name)
		for _, v := range pod.Volumes {
			assert.True(t, (v.Secret != nil || v.ConfigMap != nil) && len(v.Other) == 0,
				"%s: volume %s is not a Secret or ConfigMap. Neither service writes files (so no emptyDir), and a writable volume is room for an attacker", name, v.Name)
		}
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			cn := name + "/" + c.Name
			sc, psc := c.SecurityContext, pod.SecurityContext
			assert.True(t, is(cmpOr(sc.RunAsNonRoot, psc.RunAsNonRoot), true), "%s: runAsNonRoot must be true", cn)
			uid := cmpOr(sc.RunAsUser, psc.RunAsUser)
			assert.True(t, uid != nil && *uid > 0, "%s: runAsUser must be a numeric non-root uid, or the kubelet cannot verify runAsNonRoot", cn)
			assert.True(t, is(sc.ReadOnlyRootFilesystem, true), "%s: readOnlyRootFilesystem must be true: the services write no files", cn)
			assert.True(t, is(sc.AllowPrivilegeEscalation, false), "%s: allowPrivilegeEscalation must be false", cn)
			assert.False(t, is(sc.Privileged, true), "%s runs privileged", cn)
			assert.True(t, sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL"), "%s: capabilities must drop ALL: the services need none", cn)
			assert.True(t, sc.Capabilities == nil || len(sc.Capabilities.Add) == 0, "%s adds capabilities", cn)
			seccomp := cmpOr(sc.SeccompProfile, psc.SeccompProfile)
			assert.True(t, seccomp != nil && (seccomp.Type == "RuntimeDefault" || seccomp.Type == "Localhost"), "%s: seccompProfile must be RuntimeDefault (or a Localhost profile); Unconfined allows every syscall", cn)
			for _, r := range []string{"cpu", "memory"} {
				assert.NotEmpty(t, c.Resources.Requests[r], "%s: no %s request: the scheduler would pack pods onto nodes that cannot run them", cn, r)
				assert.NotEmpty(t, c.Resources.Limits[r], "%s: no %s limit", cn, r)
			}
			for _, vm := range c.VolumeMounts {
				assert.True(t, vm.ReadOnly, "%s mounts %s writable; the services write no files", cn, vm.MountPath)
			}
		}
	}
}

// is reports whether a setting is given, as want.
func is(setting *bool, want bool) bool { return setting != nil && *setting == want }

// cmpOr returns the container's setting if set, else the pod's.
func cmpOr[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

// TestNoInlineSecrets checks that secrets come from Secrets: no env var with a
// secret-looking name holds its value in the manifest, and no ConfigMap holds one.
func TestNoInlineSecrets(t *testing.T) {
	t.Parallel()
	m := load(t)
	for _, d := range objects[deployment](t, m, "Deployment") {
		pod := d.Spec.Template.Spec
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			cn := d.Metadata.Name + "/" + c.Name
			for _, e := range c.Env {
				if !secretLooking.MatchString(strings.ToUpper(e.Name)) {
					continue
				}
				if e.ValueFrom != nil {
					assert.NotNil(t, e.ValueFrom.SecretKeyRef, "%s takes %s from somewhere other than a Secret: ConfigMaps and fields are readable by anyone who can read the namespace", cn, e.Name)
					continue
				}
				// A path to a file mounted from a Secret is fine (BILLING_TLS_KEY_FILE).
				vm, _, ok := mountOf(c, e.Value)
				v, _ := volumeNamed(pod, vm.Name)
				assert.True(t, ok && v.Secret != nil,
					"%s sets %s inline in the manifest: anyone who can read the Deployment reads the secret. Use valueFrom.secretKeyRef, or a path to a file mounted from a Secret", cn, e.Name)
			}
		}
	}
	for name, data := range m.configMaps {
		for key, content := range data {
			var settings map[string]any
			if yaml.Unmarshal([]byte(content), &settings) != nil {
				continue
			}
			for k, v := range settings {
				s, _ := v.(string)
				if secretLooking.MatchString(strings.ToUpper(k)) {
					assert.True(t, v == nil || strings.HasPrefix(s, "/"),
						"ConfigMap %s (%s) sets %s: a ConfigMap is no place for a secret; set it from a Secret (BILLING_%s via secretKeyRef)", name, key, k, strings.ToUpper(k))
				}
				for _, part := range strings.Split(s, ",") {
					u, err := url.Parse(strings.TrimSpace(part))
					assert.False(t, err == nil && u.User != nil,
						"ConfigMap %s (%s) %s holds credentials in a URL: use a credentials file or certificate mounted from a Secret", name, key, k)
				}
			}
		}
	}
}

// TestDockerfile checks that the image builds the binaries the Deployments run, static,
// onto a distroless nonroot base.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	m := load(t)
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err, "the Deployments run an image that deploy/Dockerfile builds")
	text := string(raw)
	var from []string
	var copied []string // destination paths of COPY --from in the final stage
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && strings.EqualFold(f[0], "FROM"):
			from = append(from, f[1])
			copied = nil
		case len(f) >= 3 && strings.EqualFold(f[0], "COPY") && strings.HasPrefix(f[1], "--from="):
			dest := f[len(f)-1]
			for _, src := range f[2 : len(f)-1] {
				copied = append(copied, path.Join(dest, path.Base(src)))
			}
		}
	}
	require.NotEmpty(t, from, "the Dockerfile has no FROM")
	final := from[len(from)-1]
	assert.True(t, strings.Contains(final, "distroless/static") && strings.HasSuffix(final, ":nonroot"),
		"the image is based on %s; a static binary needs only distroless/static, as its nonroot user", final)
	assert.Contains(t, text, "CGO_ENABLED=0", "without CGO_ENABLED=0 the binaries may link libc, which distroless/static lacks: they would not start")
	assert.Contains(t, text, "-trimpath", "build with -trimpath: the image should not carry the build machine's paths")
	for _, p := range processes(t, m) {
		bin := path.Base(p.c.Command[0])
		assert.Contains(t, text, "./cmd/"+bin, "the Dockerfile does not build cmd/%s, which %s runs", bin, p.name())
		assert.Contains(t, copied, p.c.Command[0], "%s runs %s, which the image does not have (the final stage copies %v): the container would fail to start", p.name(), p.c.Command[0], copied)
	}
}
