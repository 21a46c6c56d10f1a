// Package amqptest runs private RabbitMQ nodes for tests: each node has its
// own name, ports (AMQP, TLS, Erlang distribution and its own epmd), data,
// log and config folders and Erlang cookie under a temporary directory, so
// tests never touch a broker that runs on the machine, and `make test`
// works where none runs. It needs Debian's rabbitmq-server package
// (scripts/ensure-rabbitmq.sh installs it).
//
// A node takes a few seconds to start, so a test binary shares one (Main
// starts it in the background while the tests that need no broker run;
// Shared waits for it), and each test isolates itself on the shared node
// with an exchange and queue names of its own (Scope). A test that stops,
// restarts or kills a broker takes a node of its own (Own).
//
// Every node is started with its standard input a pipe from the test
// process: the Erlang shell reading it halts the node when the pipe closes,
// so a test binary that dies (a timeout, a panic) does not leave a broker
// behind; the same holds for the node's epmd.
package amqptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// User and Password are the node's one user (RabbitMQ's default user,
// with every permission on the default vhost). The client certificate's
// common name is User too, so SASL EXTERNAL logs in as the same user.
const (
	User     = "fmn"
	Password = "fmn-test"
)

// Options choose what a node offers.
type Options struct {
	// TLS adds a TLS listener and the rabbitmq_auth_mechanism_ssl plugin
	// (SASL EXTERNAL by client certificate), with certificates made for
	// the node.
	TLS bool
}

// Node is a running private RabbitMQ node.
type Node struct {
	Name     string // the Erlang node name
	Dir      string
	AMQPPort int
	TLSPort  int // 0 without Options.TLS
	// CACert, ClientCert and ClientKey are PEM files (with Options.TLS):
	// the CA that signed the node's and the client's certificates, and a
	// client certificate whose common name is User.
	CACert, ClientCert, ClientKey string

	opts     Options
	env      []string
	distPort int
	epmdPort int
	server   *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{}
	epmd     *exec.Cmd
	epmdIn   io.WriteCloser
	removeAt bool // remove Dir on Stop (a node made outside a test's TempDir)
}

// URL is the node's amqp:// URL for the default vhost, with the password.
func (n *Node) URL() string {
	return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", User, Password, n.AMQPPort)
}

// TLSURL is the node's amqps:// URL without credentials (for EXTERNAL).
func (n *Node) TLSURL() string { return fmt.Sprintf("amqps://127.0.0.1:%d/", n.TLSPort) }

var nodeCount atomic.Int64

// findServer returns the rabbitmq-server script that runs the node as the
// calling user (Debian's /usr/sbin wrappers switch to the rabbitmq user).
func findServer() (string, error) {
	candidates := []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"}
	more, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server")
	for _, c := range append(candidates, more...) {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("RabbitMQ is not installed (no /usr/lib/rabbitmq/bin/rabbitmq-server): run scripts/ensure-rabbitmq.sh, or apt-get install rabbitmq-server")
}

func findEPMD() (string, error) {
	if p, err := exec.LookPath("epmd"); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/erlang/erts-*/bin/epmd"); len(m) > 0 {
		return m[0], nil
	}
	return "", errors.New("epmd (Erlang) not found: install rabbitmq-server, which brings it")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a node in a new temporary directory; Stop removes it.
func Start(opts Options) (*Node, error) {
	dir, err := os.MkdirTemp("", "fmn-rabbitmq-")
	if err != nil {
		return nil, err
	}
	n, err := start(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n.removeAt = true
	return n, nil
}

// Own starts a node for one test, stopped when the test ends.
func Own(t testing.TB, opts Options) *Node {
	t.Helper()
	n, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop RabbitMQ node: %v", err)
		}
	})
	return n
}

func start(dir string, opts Options) (*Node, error) {
	server, err := findServer()
	if err != nil {
		return nil, err
	}
	epmd, err := findEPMD()
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir, opts: opts,
		Name: fmt.Sprintf("fmntest-%d-%d@localhost", os.Getpid(), nodeCount.Add(1))}
	for _, p := range []*int{&n.AMQPPort, &n.distPort, &n.epmdPort} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "mnesia"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cookie := make([]byte, 16)
	rand.Read(cookie)
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), fmt.Appendf(nil, "FMNTEST%X", cookie), 0o400); err != nil {
		return nil, err
	}
	conf := []string{
		fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d", n.AMQPPort),
		"default_user = " + User,
		"default_pass = " + Password,
		"loopback_users = none",
		// Tests run in temporary folders of busy machines.
		"disk_free_limit.absolute = 1MB",
		"log.console = false",
		"log.file.level = warning",
	}
	plugins := "[]."
	if opts.TLS {
		if n.TLSPort, err = freePort(); err != nil {
			return nil, err
		}
		certs, err := WriteCerts(dir)
		if err != nil {
			return nil, err
		}
		n.CACert, n.ClientCert, n.ClientKey = certs.CA, certs.ClientCert, certs.ClientKey
		conf = append(conf,
			fmt.Sprintf("listeners.ssl.default = 127.0.0.1:%d", n.TLSPort),
			"ssl_options.cacertfile = "+n.CACert,
			"ssl_options.certfile = "+certs.Server,
			"ssl_options.keyfile = "+certs.ServerKey,
			"ssl_options.verify = verify_peer",
			"ssl_options.fail_if_no_peer_cert = false",
			"auth_mechanisms.1 = PLAIN",
			"auth_mechanisms.2 = AMQPLAIN",
			"auth_mechanisms.3 = EXTERNAL",
			"ssl_cert_login_from = common_name",
		)
		plugins = "[rabbitmq_auth_mechanism_ssl]."
	}
	files := map[string]string{
		"rabbitmq.conf":     strings.Join(conf, "\n") + "\n",
		"enabled_plugins":   plugins + "\n",
		"rabbitmq-env.conf": "", // instead of /etc/rabbitmq's, which names the system's node
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	n.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "node.pid"),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", n.distPort),
		fmt.Sprintf("ERL_EPMD_PORT=%d", n.epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		// The node runs in the foreground with an Erlang shell on its
		// standard input (see the package comment).
		"RABBITMQ_ALLOW_INPUT=true",
	)
	// epmd, private too, stopped when its guard shell's input closes.
	n.epmd = exec.Command("/bin/sh", "-c", `"$0" -port "$1" -address 127.0.0.1 & e=$!; cat >/dev/null; kill $e`,
		epmd, fmt.Sprint(n.epmdPort))
	n.epmd.Env = n.env
	if n.epmdIn, err = n.epmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := n.epmd.Start(); err != nil {
		return nil, fmt.Errorf("start epmd: %w", err)
	}
	if err := n.launch(server); err != nil {
		n.stopEPMD()
		return nil, err
	}
	return n, nil
}

// launch starts the server and waits until it accepts AMQP logins.
func (n *Node) launch(server string) error {
	out, err := os.OpenFile(filepath.Join(n.Dir, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	n.server = exec.Command(server)
	n.server.Env = n.env
	n.server.Dir = n.Dir
	n.server.Stdout, n.server.Stderr = out, out
	if n.stdin, err = n.server.StdinPipe(); err != nil {
		return err
	}
	if err := n.server.Start(); err != nil {
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(n.server, n.exited)
	// A loaded machine (the whole test suite in parallel) may take a
	// while; a node that died says so at once.
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := amqp.Dial(n.URL())
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("RabbitMQ node %s exited while starting: %s", n.Name, n.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.halt()
			return fmt.Errorf("RabbitMQ node %s did not accept connections within 90s: %v; %s", n.Name, err, n.logTail())
		}
	}
}

func (n *Node) logTail() string {
	var b bytes.Buffer
	for _, f := range []string{"console.log", n.Name + ".log"} {
		data, _ := os.ReadFile(filepath.Join(n.Dir, "log", f))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", f, data)
	}
	return b.String()
}

// halt ends the node at once, as a crash would (closing its input).
func (n *Node) halt() {
	n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.server.Process.Kill()
		<-n.exited
	}
}

// StopServer stops the broker cleanly (what an operator's restart does),
// leaving its data for Restart.
func (n *Node) StopServer() error {
	select {
	case <-n.exited:
		return nil
	default:
	}
	if err := n.server.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-n.exited:
		n.stdin.Close()
		return nil
	case <-time.After(60 * time.Second):
		n.halt()
		return errors.New("RabbitMQ did not stop within 60s of SIGTERM; halted")
	}
}

// Restart stops the broker cleanly and starts it again on the same ports
// and data: durable queues and their persistent messages survive.
func (n *Node) Restart() error {
	if err := n.StopServer(); err != nil {
		return err
	}
	server, err := findServer()
	if err != nil {
		return err
	}
	return n.launch(server)
}

// Stop stops the node and its epmd (and removes its folder when Start made
// it).
func (n *Node) Stop() error {
	err := n.StopServer()
	n.stopEPMD()
	if n.removeAt {
		os.RemoveAll(n.Dir)
	}
	return err
}

func (n *Node) stopEPMD() {
	n.epmdIn.Close()
	done := make(chan struct{})
	go func() { n.epmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		n.epmd.Process.Kill()
	}
}

// Certs are PEM files WriteCerts made.
type Certs struct {
	CA                    string // the CA that signed the others
	Server, ServerKey     string // for 127.0.0.1 and localhost
	ClientCert, ClientKey string // common name User
}

// WriteCerts writes, into dir, a CA, a server certificate for 127.0.0.1
// and localhost, and a client certificate whose common name is User.
func WriteCerts(dir string) (Certs, error) {
	var c Certs
	err := c.write(dir)
	return c, err
}

func (c *Certs) write(dir string) error {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	serial := func() *big.Int { s, _ := rand.Int(rand.Reader, big.NewInt(1<<62)); return s }
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "fmn test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name string, der []byte, k *ecdsa.PrivateKey) (string, string, error) {
		cert := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			return "", "", err
		}
		if k == nil {
			return cert, "", nil
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return "", "", err
		}
		keyPath := filepath.Join(dir, name+"-key.pem")
		return cert, keyPath, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	}
	if c.CA, _, err = write("ca", caDER, nil); err != nil {
		return err
	}
	leaf := func(name string, tmpl *x509.Certificate) (string, string, error) {
		k := key()
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial(), now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return "", "", err
		}
		return write(name, der, k)
	}
	if c.Server, c.ServerKey, err = leaf("server", &x509.Certificate{Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return err
	}
	c.ClientCert, c.ClientKey, err = leaf("client", &x509.Certificate{Subject: pkix.Name{CommonName: User},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// The node shared by a test binary.
var shared struct {
	once  sync.Once
	opts  Options
	ready chan struct{}
	node  *Node
	err   error
}

// Main runs a test binary's tests with a shared node started in the
// background (so tests that need no broker do not wait for it), stops the
// node after, and returns the exit code: func TestMain(m *testing.M) {
// os.Exit(amqptest.Main(m, amqptest.Options{})) }. A fuzzing run starts
// none ahead: each of its worker processes runs TestMain too, and a node
// apiece took the cores the fuzz targets (which need no broker) were
// meant to have. Shared still starts one for a test that asks.
func Main(m *testing.M, opts Options) int {
	flag.Parse()
	if !fuzzing() {
		StartShared(opts)
	} else {
		shared.opts = opts
	}
	code := m.Run()
	StopShared()
	return code
}

// StartShared starts the shared node in the background, for a TestMain
// with other work to do meanwhile (Main does it for one without).
func StartShared(opts Options) {
	shared.once.Do(func() {
		shared.opts, shared.ready = opts, make(chan struct{})
		go func() {
			defer close(shared.ready)
			shared.node, shared.err = Start(opts)
		}()
	})
}

// StopShared stops the shared node, if one was started.
func StopShared() {
	if shared.ready == nil {
		return
	}
	<-shared.ready
	if shared.node != nil {
		if err := shared.node.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "amqptest:", err)
		}
	}
}

// fuzzing says whether this test binary was started to fuzz (go test
// -fuzz) or as one of a fuzzing run's workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// Shared returns the test binary's shared node, waiting for it to start
// (and starting it if Main did not).
func Shared(t testing.TB) *Node {
	t.Helper()
	StartShared(shared.opts)
	<-shared.ready
	if shared.err != nil {
		t.Fatalf("shared RabbitMQ node: %v", shared.err)
	}
	return shared.node
}

// Scope is a test's own corner of a shared node: a topic exchange nobody
// else publishes to and a queue name nobody else uses.
type Scope struct {
	Exchange string
	Queue    string
}

// Binding is the FMN_AMQP_BINDINGS value that binds to everything on the
// scope's exchange.
func (s Scope) Binding() string { return s.Exchange + ":#" }

var scopeCount atomic.Int64

// Scope declares an exchange of the test's own (deleted when the test
// ends, with the queues fmn declared under the scope's name).
func (n *Node) Scope(t testing.TB) Scope {
	t.Helper()
	id := fmt.Sprintf("%s-%d-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), os.Getpid(), scopeCount.Add(1))
	s := Scope{Exchange: "ex-" + id, Queue: "q-" + id}
	err := n.WithChannel(func(ch *amqp.Channel) error {
		// Durable, like amq.topic: it survives a restarted node.
		return ch.ExchangeDeclare(s.Exchange, "topic", true, false, false, false, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.WithChannel(func(ch *amqp.Channel) error {
			ch.QueueDelete(s.Queue, false, false, false)
			return ch.ExchangeDelete(s.Exchange, false, false)
		})
	})
	return s
}

// WithChannel runs f on a fresh channel of a fresh connection.
func (n *Node) WithChannel(f func(ch *amqp.Channel) error) error {
	conn, err := amqp.Dial(n.URL())
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

// QueueDepth returns how many messages wait in queue (ready, not
// delivered to a consumer), or -1 when it does not exist.
func (n *Node) QueueDepth(queue string) (int, error) {
	depth := -1
	err := n.WithChannel(func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		depth = q.Messages
		return nil
	})
	return depth, err
}
