# Two entry points, each working on a fresh Debian machine:
#   make run    trace a capture shipped in the repo (pcapkit reading it, pcapflow tracing)
#   make test   install everything the tests need and run them
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := gcc libpcap-dev tshark tcpflow

.PHONY: deps install run test bench clean

deps:
	@if ! dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

install: deps
	$(PYTHON) -m pip install -q -e '.[test]'

run: install
	$(PYTHON) examples/trace_with_pcapkit.py tests/data/dns_tcp.pcap flows

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) bench/bench_trace.py

clean:
	rm -rf build *.egg-info pcapflow/*.so flows
