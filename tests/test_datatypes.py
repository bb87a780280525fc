"""Behaviour of pcapflow.Packet / Buffer / Index, the read-only mappings.

pcapkit's Info classes are the reference for everything the contract says is
"exactly as pcapkit" (str, repr, mapping behaviour, from_dict); the one
deliberate difference is len(), which counts only the keys (contract item 1).
"""
import collections.abc
import decimal
import ipaddress

import pytest
from pcapkit.foundation.traceflow.data import tcp as pk

import pcapflow
from _support import CLIENT, SERVER6, ETHERNET, make_frame

# (pcapflow class, pcapkit class, field names, one set of sample values)
KINDS = {
    "Packet": (pcapflow.Packet, pk.Packet,
               ("protocol", "index", "frame", "syn", "fin", "src", "dst", "srcport", "dstport", "timestamp"),
               (ETHERNET, 7, {"packet": b"xy"}, True, False, CLIENT, SERVER6, 40000, 443, 1.5)),
    "Buffer": (pcapflow.Buffer, pk.Buffer, ("fpout", "index", "label"),
               ("out/a.pcap", [1, 2], "10.0.0.1_1-10.0.0.2_2-1.5")),
    "Index": (pcapflow.Index, pk.Index, ("fpout", "index", "label"),
              ("out/a.pcap", (1, 2), "10.0.0.1_1-10.0.0.2_2-1.5")),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


def build(kind):
    cls, _, fields, values = kind
    return cls(*values)


# --- construction -----------------------------------------------------------

def test_positional_and_keyword_construction_agree(kind):
    cls, _, fields, values = kind
    by_position = cls(*values)
    by_keyword = cls(**dict(zip(fields, values)))
    assert by_position == by_keyword
    assert list(by_position.items()) == list(zip(fields, values))
    # keyword order does not decide key order: the class's field order does
    reversed_kw = cls(**dict(reversed(list(zip(fields, values)))))
    assert list(reversed_kw) == list(fields)


def test_missing_positional_argument_names_the_field(kind):
    cls, _, fields, values = kind
    with pytest.raises(TypeError, match=fields[-1]):
        cls(*values[:-1])


@pytest.mark.parametrize("position", [0, 1, -1])
def test_missing_keyword_argument_names_the_field(kind, position):
    cls, _, fields, values = kind
    kwargs = dict(zip(fields, values))
    missing = fields[position]
    del kwargs[missing]
    with pytest.raises(TypeError, match=missing):
        cls(**kwargs)


def test_too_many_or_unknown_arguments_rejected(kind):
    cls, _, fields, values = kind
    with pytest.raises(TypeError):
        cls(*values, "one too many")
    with pytest.raises(TypeError, match="bogus"):
        cls(**dict(zip(fields, values)), bogus=1)
    with pytest.raises(TypeError):  # same field given twice
        cls(*values, **{fields[0]: values[0]})


# --- read access --------------------------------------------------------------

def test_attribute_and_item_access(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    for field, value in zip(fields, values):
        assert getattr(obj, field) is value
        assert obj[field] is value
    with pytest.raises(AttributeError):
        obj.no_such_field
    with pytest.raises(KeyError):
        obj["no_such_field"]


def test_len_counts_keys_only(kind):
    # contract item 1: pcapkit would say len + 2 here
    cls, _, fields, values = kind
    assert len(cls(*values)) == len(fields)


def test_iteration_keys_values_items(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    assert list(obj) == list(fields)
    assert list(obj.keys()) == list(fields)
    assert list(obj.values()) == list(values)
    assert list(obj.items()) == list(zip(fields, values))
    assert dict(obj) == dict(zip(fields, values))


def test_get_and_in(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    assert obj.get(fields[0]) is values[0]
    assert obj.get("missing") is None
    assert obj.get("missing", 42) == 42
    assert fields[-1] in obj
    assert "missing" not in obj
    assert values[-1] not in obj  # `in` tests keys, not values


def test_is_a_registered_mapping(kind):
    obj = build(kind)
    assert isinstance(obj, collections.abc.Mapping)
    assert not isinstance(obj, collections.abc.MutableMapping)
    assert type(obj).__name__ == kind[1].__name__


# --- equality and hashing ------------------------------------------------------

def test_equality_like_a_mapping(kind):
    cls, pk_cls, fields, values = kind
    obj = cls(*values)
    as_dict = dict(zip(fields, values))
    assert obj == cls(*values)
    assert obj == as_dict and as_dict == obj
    assert not (obj != as_dict)
    # pcapkit's objects are mappings too, so they compare equal both ways
    assert obj == pk_cls(*values)
    assert pk_cls(*values) == obj
    changed = dict(as_dict, **{fields[-1]: "something else"})
    assert obj != changed
    assert obj != cls(**changed)
    # a non-mapping is simply unequal (no exception)
    assert obj != tuple(values)
    assert obj != None  # noqa: E711


def test_index_equals_buffer_with_same_items():
    # both are mappings with the same items, as with pcapkit
    assert pcapflow.Index("f", (1,), "l") == pcapflow.Buffer("f", (1,), "l")
    assert pk.Index("f", (1,), "l") == pk.Buffer("f", (1,), "l")


def test_unhashable(kind):
    obj = build(kind)
    with pytest.raises(TypeError):
        hash(obj)
    with pytest.raises(TypeError):
        {obj}


# --- immutability ----------------------------------------------------------------

def test_setting_attributes_raises_unsupported_call(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    assert issubclass(pcapflow.UnsupportedCall, AttributeError)
    for name in (fields[0], "brand_new"):
        with pytest.raises(pcapflow.UnsupportedCall, match="^can't set attribute$"):
            setattr(obj, name, 1)
    with pytest.raises(AttributeError):  # catchable as the builtin too
        setattr(obj, fields[0], 1)
    assert obj[fields[0]] is values[0]
    assert not hasattr(obj, "brand_new")


def test_deleting_attributes_raises_unsupported_call(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    for name in (fields[0], "brand_new"):
        with pytest.raises(pcapflow.UnsupportedCall, match="^can't delete attribute$"):
            delattr(obj, name)
    assert list(obj) == list(fields)


def test_item_assignment_unsupported(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    with pytest.raises(TypeError):
        obj[fields[0]] = 1
    with pytest.raises(TypeError):
        del obj[fields[0]]
    assert obj[fields[0]] is values[0]


# --- to_dict / from_dict ------------------------------------------------------------

def test_to_dict_is_a_detached_plain_dict(kind):
    cls, _, fields, values = kind
    obj = cls(*values)
    out = obj.to_dict()
    assert type(out) is dict
    assert list(out.items()) == list(zip(fields, values))
    out[fields[0]] = "changed"
    assert obj[fields[0]] is values[0]


def test_to_dict_converts_directly_nested_info_like_pcapkit():
    inner = pcapflow.Index("f.pcap", (1,), "l")
    outer = pcapflow.Buffer(inner, [inner], "label")
    expected = pk.Buffer(pk.Index("f.pcap", (1,), "l"), [inner], "label").to_dict()
    got = outer.to_dict()
    assert got == expected
    assert type(got["fpout"]) is dict  # nested directly: converted
    assert got["index"][0] is inner   # nested inside a list: left alone


def test_from_dict_sources(kind):
    cls, _, fields, values = kind
    expected = cls(*values)
    pairs = list(zip(fields, values))
    assert cls.from_dict(dict(pairs)) == expected
    assert cls.from_dict(pairs) == expected            # iterable of pairs
    assert cls.from_dict(iter(pairs)) == expected      # ... even a one-shot iterator
    assert cls.from_dict(**dict(pairs)) == expected    # kwargs only
    assert cls.from_dict(None, **dict(pairs)) == expected
    head, tail = dict(pairs[:1]), dict(pairs[1:])
    assert cls.from_dict(head, **tail) == expected     # mapping plus kwargs
    assert cls.from_dict(expected) == expected          # another Info as the mapping
    assert type(cls.from_dict(dict(pairs))) is cls


def test_from_dict_keeps_unknown_keys_like_pcapkit(kind):
    cls, pk_cls, fields, values = kind
    data = dict(zip(fields, values), extra="x", another=3)
    ours, theirs = cls.from_dict(data), pk_cls.from_dict(data)
    assert list(ours) == list(theirs) == [*fields, "extra", "another"]
    assert ours.extra == "x" and ours["another"] == 3
    assert len(ours) == len(fields) + 2
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)
    assert ours.to_dict() == theirs.to_dict()


def test_from_dict_with_partial_keys_like_pcapkit(kind):
    cls, pk_cls, fields, values = kind
    data = {fields[1]: values[1]}
    ours, theirs = cls.from_dict(data), pk_cls.from_dict(data)
    assert list(ours) == [fields[1]]
    assert len(ours) == 1
    assert ours == data
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)
    with pytest.raises(AttributeError):
        getattr(ours, fields[0])
    with pytest.raises(KeyError):
        ours[fields[0]]
    empty = cls.from_dict()
    assert len(empty) == 0 and list(empty) == [] and empty == {}
    assert repr(empty) == repr(pk_cls.from_dict())


def test_from_dict_result_is_immutable_too(kind):
    cls, _, fields, values = kind
    obj = cls.from_dict(dict(zip(fields, values)))
    with pytest.raises(pcapflow.UnsupportedCall):
        setattr(obj, fields[0], 1)


# --- str / repr against pcapkit -------------------------------------------------------

TRICKY_VALUES = [
    None,
    "it's",
    'say "hi"',
    "both ' and \"",
    "back\\slash\nnewline",
    "",
    (1, 2),
    (),
    (3,),
    [4, 5],
    ipaddress.ip_address("192.0.2.1"),
    ipaddress.ip_address("2001:db8::1"),
    decimal.Decimal("1600000000.000000001"),
    1e-05,
    1600000000.123456,
    True,
    b"\x00'\xff",
    {"packet": b"ab", "frame_info": {"ts_sec": 1}},
]


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=repr)
def test_str_and_repr_match_pcapkit(kind, value):
    cls, pk_cls, fields, values = kind
    vals = list(values)
    vals[0] = value
    vals[-1] = value
    ours, theirs = cls(*vals), pk_cls(*vals)
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)


def test_nested_info_str_and_repr_match_pcapkit():
    # repr abbreviates a directly nested Info to `Index(...)`; str spells it out
    ours = pcapflow.Buffer(pcapflow.Index("a'b", (1, 2), "x"), [1], "it's")
    theirs = pk.Buffer(pk.Index("a'b", (1, 2), "x"), [1], "it's")
    assert repr(ours) == repr(theirs) == "<Buffer fpout=Index(...), index=[1], label=\"it's\">"
    assert str(ours) == str(theirs)
    # an Info inside a tuple is not "directly nested": its own repr is used
    ours = pcapflow.Index(None, (pcapflow.Index(None, (), "in"),), "out")
    theirs = pk.Index(None, (pk.Index(None, (), "in"),), "out")
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)
    # a pcapkit Info held by a pcapflow object is abbreviated the same way
    # (pcapkit hands its own frame Info objects to the tracer)
    ours = pcapflow.Buffer(pk.Index("f", (1,), "x"), [1], "y")
    assert repr(ours) == repr(theirs := pk.Buffer(pk.Index("f", (1,), "x"), [1], "y"))
    assert str(ours) == str(theirs)


def test_packet_str_and_repr_with_real_frame_and_addresses_match_pcapkit():
    frame = make_frame(b"abc", 1, 2)
    args = (ETHERNET, 3, frame, False, True, CLIENT, SERVER6, 1, 65535, decimal.Decimal("1.000002"))
    assert str(pcapflow.Packet(*args)) == str(pk.Packet(*args))
    assert repr(pcapflow.Packet(*args)) == repr(pk.Packet(*args))


def test_documented_index_formats():
    idx = pcapflow.Index("out/x.pcap", (1, 2), "x")
    assert str(idx) == "Index(fpout=out/x.pcap, index=(1, 2), label=x)"
    assert repr(idx) == "<Index fpout='out/x.pcap', index=(1, 2), label='x'>"
