"""Smoke test of an installed pcapflow (a wheel in a fresh venv; cibuildwheel's test step).

    python packaging/smoke.py CAPTURE [--bundled-libpcap]

Run from outside the source tree, so that the installed package is the one
imported. CAPTURE is examples/data/http_espn.pcapng (its numbers are below).
With --bundled-libpcap (Linux wheels repaired by auditwheel) the extension
must load the libpcap the wheel carries, and nothing of D-Bus or RDMA. As
root it also traces a live capture on the loopback interface.
Exits non-zero on the first failure.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

# examples/data/http_espn.pcapng: 50 TCP flows, all of them to port 80
EXPECTED_FLOWS = 50


def fail(message):
    sys.exit("smoke: FAILED: " + message)


def check_bundled_libpcap(extension):
    ldd = subprocess.run(["ldd", extension], check=True, capture_output=True, text=True).stdout
    print(ldd, end="")
    libpcap = [line.split("=>")[1].split()[0] for line in ldd.splitlines() if "libpcap" in line and "=>" in line]
    if len(libpcap) != 1:
        fail("expected one libpcap in ldd's output, found %r" % libpcap)
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(extension)), "pcapflow.libs")
    if os.path.dirname(os.path.realpath(libpcap[0])) != os.path.realpath(libs_dir):
        fail("libpcap is loaded from %s, not from the wheel's %s" % (libpcap[0], libs_dir))
    unwanted = re.findall(r"lib(?:dbus|ibverbs|systemd|nl-3|usb|bluetooth)[^ ]*", ldd)
    if unwanted:
        fail("the extension pulls in %s" % unwanted)
    print("smoke: libpcap bundled:", libpcap[0])


def check_live_capture():
    """trace_live() on the loopback interface, through the wheel's libpcap, sees a connection made meanwhile."""
    import pcapflow

    if os.geteuid() != 0:
        print("smoke: live capture not tried (needs root or CAP_NET_RAW)")
        return
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def connect():
        time.sleep(0.5)  # capture is under way by then
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"smoke")
        accepted, _ = server.accept()
        accepted.close()

    talker = threading.Thread(target=connect)
    talker.start()
    with tempfile.TemporaryDirectory() as out:
        stats = {}
        flows = pcapflow.trace_live("lo", out, filter="tcp port %d" % port, duration=2, stats=stats)
    talker.join()
    server.close()
    # a label is {src}_{srcport}-{dst}_{dstport}-{timestamp}
    if not any("_%d-" % port in flow.label for flow in flows):
        fail("trace_live on lo saw no flow from port %d: %r, %r" % (port, flows, stats))
    print("smoke: trace_live on lo traced %d flows of a connection to port %d" % (len(flows), port))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("capture")
    parser.add_argument("--bundled-libpcap", action="store_true")
    args = parser.parse_args()
    capture = os.path.abspath(args.capture)

    import pcapflow
    from pcapflow import _core

    print("smoke: pcapflow", pcapflow.__version__, "from", os.path.dirname(pcapflow.__file__))
    if "site-packages" not in pcapflow.__file__:
        fail("pcapflow was imported from %s, not from an installed wheel" % pcapflow.__file__)

    with tempfile.TemporaryDirectory() as out:
        flows = pcapflow.trace_file(capture, os.path.join(out, "api"), filter="tcp port 80")
        written = os.listdir(os.path.join(out, "api"))
        if len(flows) != EXPECTED_FLOWS or len(written) != EXPECTED_FLOWS:
            fail("trace_file gave %d flows and %d files, expected %d" % (len(flows), len(written), EXPECTED_FLOWS))
        for flow in flows:
            if os.path.getsize(flow.fpout) <= 24:
                fail("%s has no frames" % flow.fpout)
        # the command-line entry point of the wheel
        ran = subprocess.run([sys.executable, "-m", "pcapflow", capture, "-o", os.path.join(out, "cli")],
                             capture_output=True, text=True)
        if ran.returncode != 0 or sorted(os.listdir(os.path.join(out, "cli"))) != sorted(written):
            fail("the CLI exited with %d and wrote other files: %s" % (ran.returncode, ran.stderr))
    print("smoke: traced %d flows from %s (API and CLI)" % (len(flows), os.path.basename(capture)))

    if args.bundled_libpcap:
        check_bundled_libpcap(_core.__file__)
    check_live_capture()


if __name__ == "__main__":
    main()
