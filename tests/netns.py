"""Two hosts joined by a veth pair, each in a network namespace of its own, for
the live capture tests (root only): a server runs in one, a client in the
other, and captures run on the server's end of the pair."""
import ctypes
import itertools
import os
import subprocess
import sys

CLONE_NEWNET = 0x40000000
_names = itertools.count()


def _ip(*args):
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Namespace:
    """A network namespace with its loopback up; processes are started in it."""

    def __init__(self, name):
        self.name = name
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _enter(self, one_cpu=False):
        # runs in the child between fork and exec: no ip netns exec in between, so
        # the command itself is what starts (the sanitizer runs' preload rules apply)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(127)  # pylint: disable=protected-access
        os.close(fd)
        if one_cpu:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    def popen(self, args, *, one_cpu=False, **kwargs):
        """Starts args in the namespace. one_cpu: on one CPU, so that the frames it sends
        and receives pass the kernel in one order, the one every capturer sees (frames on
        two CPUs at once reach two packet sockets in either order)."""
        return subprocess.Popen(args, preexec_fn=lambda: self._enter(one_cpu), **kwargs)  # pylint: disable=subprocess-popen-preexec-fn

    def run(self, args, *, one_cpu=False, **kwargs):
        return subprocess.run(args, preexec_fn=lambda: self._enter(one_cpu), **kwargs)  # pylint: disable=subprocess-popen-preexec-fn

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


class Link:
    """Hosts a (SERVER, 10.231.0.1 on interface `server_side`) and b (10.231.0.2) on a veth pair."""

    SERVER, CLIENT = "10.231.0.1", "10.231.0.2"

    def __init__(self):
        tag = f"pf{os.getpid()}x{next(_names)}"
        self.server = self.client = None
        self.server_side = "pfserver"
        try:
            self.server = Namespace(tag + "s")
            self.client = Namespace(tag + "c")
            _ip("-n", self.server.name, "link", "add", self.server_side, "type", "veth", "peer", "name", "pfclient",
                "netns", self.client.name)
            _ip("-n", self.server.name, "addr", "add", self.SERVER + "/24", "dev", self.server_side)
            _ip("-n", self.client.name, "addr", "add", self.CLIENT + "/24", "dev", "pfclient")
            _ip("-n", self.server.name, "link", "set", self.server_side, "up")
            _ip("-n", self.client.name, "link", "set", "pfclient", "up")
        except BaseException:
            self.delete()
            raise

    def delete(self):
        for namespace in (self.server, self.client):
            if namespace:
                namespace.delete()


def cannot_make_namespaces():
    """Why this machine cannot run the live tests, or None."""
    if os.geteuid() != 0:
        return "live capture tests need root (network namespaces, packet sockets)"
    try:
        Namespace(f"pfprobe{os.getpid()}").delete()
    except OSError as error:
        return f"network namespaces cannot be made here: {error}"
    return None


HTTP_CLIENT = r"""
import sys, time, urllib.request
url, count, pause_after, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for n in range(count):
    if n == pause_after:
        time.sleep(pause)
    urllib.request.urlopen(url + "/data.bin", timeout=10).read()
"""

WAIT_FOR_SERVER = r"""
import socket, sys, time
for attempt in range(400):
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("the server does not answer")
"""

# one connection whose request comes in two halves, `pause` seconds apart:
# both directions fall silent meanwhile, without a FIN
SLOW_REQUEST = r"""
import socket, sys, time
host, port, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with socket.create_connection((host, port), timeout=10) as s:
    s.sendall(b"GET /data.bin HTTP/1.0\r\n")
    time.sleep(pause)
    s.sendall(b"\r\n")
    while s.recv(65536):
        pass
"""


def http_server(link, directory, port=8000):
    """python3 -m http.server on the link's server (HTTP/1.0: a connection per request,
    closed by FINs), serving data.bin; returns once it accepts connections (a probe that
    happens before any capture starts)."""
    (directory / "data.bin").write_bytes(bytes(range(256)) * 400)
    server = link.server.popen([sys.executable, "-m", "http.server", "--bind", Link.SERVER, str(port),
                                "--directory", str(directory)], one_cpu=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    done = link.client.run([sys.executable, "-c", WAIT_FOR_SERVER, Link.SERVER, str(port)], capture_output=True,
                           text=True, timeout=60, check=False)
    if done.returncode != 0:
        server.kill()
        raise AssertionError(done.stderr)
    return server


def _client(namespace, script, *args):
    done = namespace.run([sys.executable, "-c", script, *map(str, args)], one_cpu=True, capture_output=True,
                         text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def http_requests(link, count, *, port=8000, pause_after=-1, pause=0.0):
    """count requests from the client, with a pause before request pause_after."""
    _client(link.client, HTTP_CLIENT, f"http://{Link.SERVER}:{port}", count, pause_after, pause)


def slow_request(link, pause, port=8000):
    _client(link.client, SLOW_REQUEST, Link.SERVER, port, pause)
