#!/usr/bin/env bash
# Builds the libpcap that binary wheels carry and installs it under PREFIX:
#   packaging/build-libpcap.sh PREFIX
# then `PCAPFLOW_LIBPCAP_PREFIX=PREFIX` makes setup.py link it, and
# auditwheel copies it into the wheel.
#
# Why not the system's: Debian's libpcap links D-Bus, systemd, libgcrypt,
# lz4, zstd and more (for D-Bus and RDMA capture), all of which a repaired
# wheel would have to carry. This one is configured without D-Bus, RDMA,
# Bluetooth, USB, netmap, DPDK, libnl and remote capture, so it needs only
# libc, and still captures from Linux packet sockets (live capture).
#
# The source: LIBPCAP_TARBALL=FILE (an upstream release tarball, as a
# cibuildwheel before-all step downloads), or else Debian's source package
# (apt-get source; its origin tarball is upstream's, checked by apt against
# the signed .dsc). The Debian patches are not applied: they concern
# Debian's own build.
set -euo pipefail

prefix=${1:?usage: build-libpcap.sh PREFIX}
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
work=$prefix.src
rm -rf "$work"
mkdir -p "$work"

if [ -z "${LIBPCAP_TARBALL:-}" ]; then
    if ! command -v apt-get >/dev/null; then
        echo "build-libpcap.sh: no apt-get here; set LIBPCAP_TARBALL to a libpcap release tarball" >&2
        exit 2
    fi
    # apt-get source needs deb-src entries: add deb-src to the Types: line
    # of Debian's sources (deb822 format) unless some source list has them
    sources=/etc/apt/sources.list.d/debian.sources
    if ! grep -rqs -e '^Types:.*deb-src' -e '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        if [ ! -f "$sources" ]; then
            echo "build-libpcap.sh: no deb-src entries and no $sources to add them to" >&2
            exit 2
        fi
        sed -i 's/^Types: deb$/Types: deb deb-src/' "$sources"
        apt-get update -qq
    elif ! apt-get source --download-only --print-uris libpcap >/dev/null 2>&1; then
        apt-get update -qq
    fi
    # (apt warns that it downloads as root, unsandboxed: expected here)
    (cd "$work" && apt-get source -qq --download-only libpcap >/dev/null)
    for tarball in "$work"/libpcap_*.orig.tar.*; do
        case $tarball in *.asc) ;; *) LIBPCAP_TARBALL=$tarball ;; esac
    done
    if [ -z "${LIBPCAP_TARBALL:-}" ]; then
        echo "build-libpcap.sh: apt-get source libpcap brought no origin tarball" >&2
        exit 1
    fi
fi

tar -xf "$LIBPCAP_TARBALL" -C "$work"
cd "$work"/libpcap-*/
# -O2 without -g: the library ships in every wheel, debugging data would
# triple its size
CFLAGS="-O2" ./configure -q --prefix="$prefix" --disable-static \
    --disable-dbus --disable-rdma --disable-bluetooth --disable-usb --disable-netmap \
    --without-dpdk --without-libnl --disable-remote >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log" >&2; exit 1; }
make -s -j"$(nproc 2>/dev/null || echo 2)" >"$work/make.log" 2>&1 || { tail -30 "$work/make.log" >&2; exit 1; }
make -s install >>"$work/make.log" 2>&1
rm -rf "$work"
echo "libpcap $(cat "$prefix/lib/pkgconfig/libpcap.pc" | sed -n 's/^Version: //p') in $prefix"
