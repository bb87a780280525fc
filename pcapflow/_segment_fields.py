"""The TCP fields of a captured frame, read in Python from the frame's bytes.

pcapflow.packets() gives each TCP frame's bytes and link type; TCP reassembly
needs the sequence and acknowledgement numbers, the flags, the TCP header and
the payload. tcp_fields() finds them the way the C decoder (csrc/core/decode.c)
finds the flow key, so that every frame the tracer traces decodes here too:
the same link types (Ethernet with any number of 802.1Q/802.1ad tags, MPLS,
PPPoE, Linux SLL and SLL2, raw IP, IPv4/IPv6 link types, BSD NULL/LOOP, PPP),
IPv4 with authentication headers, IPv6 with its extension headers (and the
jumbo payload length), TCP right after the first IP header (no tunnels). The
payload ends where the IP datagram does (Ethernet padding is not payload) or
where the capture does.

The common frame (Ethernet, IPv4, TCP) takes one struct call and a few slices.
"""
import struct

__all__ = ["tcp_fields", "SYN", "FIN", "RST"]

FIN, SYN, RST = 0x01, 0x02, 0x04

# LINKTYPE_ (files) and DLT_ (libpcap) numbers decode.c accepts
_NULL, _ETHERNET, _PPP, _RAW_OPENBSD, _RAW_BSD, _PPP_HDLC, _RAW, _LOOP = 0, 1, 9, 12, 14, 50, 101, 108
_LINUX_SLL, _IPV4, _IPV6, _LINUX_SLL2 = 113, 228, 229, 276

_IPV4_HEAD = struct.Struct("!BxHxxHxB").unpack_from  # version/ihl, total length, flags/offset, protocol
_TCP_HEAD = struct.Struct("!4xIIBB").unpack_from     # seq, ack, offset byte, flags
_U16 = struct.Struct("!H").unpack_from


def _tcp(data, offset, end):
    """(seq, ack, flags, header, payload) of the TCP header at data[offset:end], or None."""
    if end - offset < 14:
        return None
    seq, ack, doff, flags = _TCP_HEAD(data, offset)
    body = offset + (doff >> 4) * 4
    if body > end:
        return seq, ack, flags, data[offset:end], b""
    return seq, ack, flags, data[offset:body], data[body:end]


def _ipv4(data, offset, end):
    if end - offset < 20:
        return None
    first, total, fragment, protocol = _IPV4_HEAD(data, offset)
    header = (first & 0x0F) * 4
    if first >> 4 != 4 or header < 20 or offset + header > end:
        return None
    if fragment & 0x1FFF:
        return None
    if total:  # 0: TCP segmentation offload; the captured bytes count
        if total < header:
            return None
        if offset + total < end:
            end = offset + total
    position = offset + header
    while protocol == 51:  # authentication header (RFC 4302)
        if position + 2 > end:
            return None
        extension = (data[position + 1] + 2) * 4
        if position + extension > end:
            return None
        protocol = data[position]
        position += extension
    if protocol != 6:
        return None
    return _tcp(data, position, end)


def _jumbo_length(data, offset, end):
    """The jumbo payload length (RFC 2675) of the hop-by-hop header at offset, or 0."""
    if end - offset < 2:
        return 0
    stop = min(offset + (data[offset + 1] + 1) * 8, end)
    position = offset + 2
    while position < stop:
        kind = data[position]
        if kind == 0:
            position += 1
            continue
        if position + 2 > stop:
            return 0
        size = 2 + data[position + 1]
        if kind == 0xC2 and size == 6 and position + 6 <= stop:
            jumbo = int.from_bytes(data[position + 2:position + 6], "big")
            return jumbo if jumbo > 65535 else 0
        position += size
    return 0


def _ipv6(data, offset, end):
    if end - offset < 40 or data[offset] >> 4 != 6:
        return None
    following = data[offset + 6]
    stated = 40 + _U16(data, offset + 4)[0]
    if stated == 40 and following == 0:
        stated += _jumbo_length(data, offset + 40, end)
    if offset + stated < end:
        end = offset + stated
    position = offset + 40
    while following != 6:
        if following in (0, 43, 60):  # hop-by-hop, routing, destination options
            if position + 2 > end:
                return None
            extension = (data[position + 1] + 1) * 8
        elif following == 44:  # fragment: only the first one holds the TCP header
            if position + 8 > end or _U16(data, position + 2)[0] & 0xFFF8:
                return None
            extension = 8
        elif following == 51:  # authentication header
            if position + 2 > end:
                return None
            extension = (data[position + 1] + 2) * 4
        else:
            return None
        if position + extension > end:
            return None
        following = data[position]
        position += extension
    return _tcp(data, position, end)


def _ip_by_version(data, offset, end):
    if offset >= end:
        return None
    version = data[offset] >> 4
    if version == 4:
        return _ipv4(data, offset, end)
    if version == 6:
        return _ipv6(data, offset, end)
    return None


def _mpls(data, offset, end):
    while True:
        if offset + 4 > end:
            return None
        bottom = data[offset + 2] & 1
        offset += 4
        if bottom:
            return _ip_by_version(data, offset, end)


def _ppp(data, offset, end):
    if end - offset >= 2 and data[offset] == 0xFF and data[offset + 1] == 0x03:
        offset += 2
    if offset + 1 > end:
        return None
    if data[offset] & 1:
        protocol = data[offset]
        offset += 1
    else:
        if offset + 2 > end:
            return None
        protocol = _U16(data, offset)[0]
        offset += 2
    if protocol == 0x21:
        return _ipv4(data, offset, end)
    if protocol == 0x57:
        return _ipv6(data, offset, end)
    if protocol in (0x281, 0x283):
        return _mpls(data, offset, end)
    return None


def _ethertype(kind, data, offset, end):
    if kind == 0x0800:
        return _ipv4(data, offset, end)
    if kind == 0x86DD:
        return _ipv6(data, offset, end)
    if kind in (0x8847, 0x8848):
        return _mpls(data, offset, end)
    if kind == 0x8864:  # PPPoE session: its length bounds the PPP frame
        if end - offset < 6:
            return None
        payload = _U16(data, offset + 4)[0]
        if payload < end - offset - 6:
            end = offset + 6 + payload
        return _ppp(data, offset + 6, end)
    return None


def _ethernet(data, end):
    if end < 14:
        return None
    kind = data[12] << 8 | data[13]
    offset = 12
    while kind in (0x8100, 0x88A8, 0x9100):
        offset += 4
        if offset + 2 > end:
            return None
        kind = data[offset] << 8 | data[offset + 1]
    return _ethertype(kind, data, offset + 2, end)


def _loopback(data, end):
    if end < 4:
        return None
    big = int.from_bytes(data[:4], "big")
    family = big if big < 256 else int.from_bytes(data[:4], "little")
    if family == 2:
        return _ipv4(data, 4, end)
    if family in (10, 24, 28, 30):
        return _ipv6(data, 4, end)
    return None


def tcp_fields(linktype, data):
    """(seq, ack, flags, header, payload) of the TCP segment in a frame, or None.

    linktype is the frame's LINKTYPE_ (or DLT_) number, data its captured bytes."""
    end = len(data)
    if linktype == _ETHERNET:
        # the common case inline: Ethernet, IPv4 without options or fragments, TCP
        if end >= 54 and data[12] == 8 and data[13] == 0:
            first, total, fragment, protocol = _IPV4_HEAD(data, 14)
            if first == 0x45 and protocol == 6 and not fragment & 0x1FFF and total >= 20:
                if total and 14 + total < end:
                    end = 14 + total
                if end >= 48:
                    seq, ack, doff, flags = _TCP_HEAD(data, 34)
                    body = 34 + (doff >> 4) * 4
                    if body <= end:
                        return seq, ack, flags, data[34:body], data[body:end]
        return _ethernet(data, len(data))
    if linktype == _LINUX_SLL:
        return _ethertype(_U16(data, 14)[0], data, 16, end) if end >= 16 else None
    if linktype == _LINUX_SLL2:
        return _ethertype(_U16(data, 0)[0], data, 20, end) if end >= 20 else None
    if linktype in (_RAW, _RAW_OPENBSD, _RAW_BSD):
        return _ip_by_version(data, 0, end)
    if linktype == _IPV4:
        return _ipv4(data, 0, end)
    if linktype == _IPV6:
        return _ipv6(data, 0, end)
    if linktype in (_NULL, _LOOP):
        return _loopback(data, end)
    if linktype in (_PPP, _PPP_HDLC):
        return _ppp(data, 0, end)
    return None
