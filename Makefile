# Two entry points, each working on a fresh Debian machine:
#   make run    trace every TCP flow of a capture shipped in the repo into flows/
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
	$(PYTHON) -m pcapflow examples/data/http_espn.pcapng -o flows --index flows.jsonl
	@echo "one pcap file per flow in flows/, one JSON line per flow in flows.jsonl"

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) bench/bench_trace.py

clean:
	rm -rf build *.egg-info pcapflow/*.so flows flows.jsonl
