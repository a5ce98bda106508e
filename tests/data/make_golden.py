#!/usr/bin/env python3
"""Writes the expected outputs of the golden tests from the bodies.

An independent reference of SPEC sections 1 and 3, written from the SPEC
rather than from the C code, so test_normalize compares the library
against a second implementation. For each NAME.body.json it writes:
  NAME.jsonl         normalized events, flags 0, one per line
  NAME.expose.jsonl  with CBEV_JSON_EXPOSE_ANON
  NAME.raw.jsonl     with CBEV_JSON_RAW
Re-run it after adding a body, then review the diff by eye: a golden file
is only as good as that review.

Numbers keep the text received (SPEC 1): the raw form republishes it,
media.id is it, and tokens are read exactly from an integer's text (one
written with a fraction or an exponent counts when integral and within
2^53). Anonymity fails closed (SPEC 2): a tip is anonymous unless every
isAnon it has is JSON false, or it has none.
"""
import datetime
import glob
import json
import math
import os
import re

TYPES = {
    "broadcastStart": "broadcast_start", "broadcastStop": "broadcast_stop",
    "roomSubjectChange": "room_subject_change", "userEnter": "user_enter",
    "userLeave": "user_leave", "follow": "follow", "unfollow": "unfollow",
    "fanclubJoin": "fanclub_join", "chatMessage": "chat_message",
    "privateMessage": "private_message", "tip": "tip",
    "mediaPurchase": "media_purchase",
}
USER_KEYS = [  # (payload key, upstream key, kind)
    ("username", "username", "s"), ("color_group", "colorGroup", "s"),
    ("fc_auto_renew", "fcAutoRenew", "b"), ("gender", "gender", "s"),
    ("has_darkmode", "hasDarkmode", "b"), ("has_tokens", "hasTokens", "b"),
    ("in_fanclub", "inFanclub", "b"), ("in_private_show", "inPrivateShow", "b"),
    ("is_broadcasting", "isBroadcasting", "b"), ("is_follower", "isFollower", "b"),
    ("is_mod", "isMod", "b"), ("is_owner", "isOwner", "b"),
    ("is_silenced", "isSilenced", "b"), ("is_spying", "isSpying", "b"),
    ("language", "language", "s"), ("recent_tips", "recentTips", "s"),
    ("subgender", "subgender", "s"),
]
I64 = 2 ** 63


class Num(str):
    """A JSON number, kept as its text."""


class Obj(dict):
    """A JSON object (the last duplicate wins, as in C) that remembers
    whether any isAnon member of it was not false."""
    anon_any = False


def obj_hook(pairs):
    o = Obj(pairs)
    o.anon_any = any(k == "isAnon" and v is not False for k, v in pairs)
    return o


def num(v):
    return isinstance(v, Num)


def is_str(v):
    return isinstance(v, str) and not num(v)  # a Num is a str too


def as_str(d, k):
    v = d.get(k)
    return v if is_str(v) else None


def as_bool(d, k):
    v = d.get(k)
    return v if isinstance(v, bool) else None


def as_int(d, k):
    v = d.get(k)
    if not num(v):
        return None
    if re.fullmatch(r"-?[0-9]+", v):
        return int(v) if -I64 <= int(v) < I64 else None
    f = float(v)
    if math.isfinite(f) and f.is_integer() and abs(f) <= 2 ** 53:
        return int(f)
    return None


def snake(method):
    out = []
    for i, c in enumerate(method):
        if "A" <= c <= "Z":
            if i:
                out.append("_")
            out.append(c.lower())
        elif c.isascii() and (c.isalnum() or c == "_"):
            out.append(c)
        else:
            out.append("_" * len(c.encode("utf-8")))
    return "".join(out)[:64]


def timestamp(event_id):
    m = re.fullmatch(r"([0-9]+)-([0-9]+)", event_id)
    if not m or int(m.group(1)) >= 2 ** 64 or int(m.group(2)) >= 2 ** 64:
        return None
    ms = int(m.group(1))
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def user_of(obj):
    u = obj.get("user")
    if not isinstance(u, dict) or not is_str(u.get("username")):
        return None
    out = {}
    for key, up, kind in USER_KEYS:
        out[key] = as_str(u, up) if kind == "s" else as_bool(u, up)
    if out["subgender"] == "":
        out["subgender"] = None
    return out


def normalize(ev, expose):
    obj = ev.get("object") if isinstance(ev.get("object"), dict) else None
    o = obj or {}
    method = ev["method"]
    etype = TYPES.get(method)
    out = {"id": ev["id"], "event_type": etype or snake(method),
           "broadcaster": as_str(o, "broadcaster"),
           "timestamp": timestamp(ev["id"]), "user": user_of(o)}
    if etype == "tip":
        t = o.get("tip")
        if isinstance(t, dict):
            msg = as_str(t, "message")
            if msg is not None and msg.startswith("| "):
                msg = msg[2:]
            out["tip"] = {"tokens": as_int(t, "tokens"),
                          "is_anon": True if t.anon_any else
                          (False if "isAnon" in t else None), "message": msg}
            if out["tip"]["is_anon"] is True and not expose:
                out["user"] = None
        else:
            out["tip"] = None
    elif etype in ("chat_message", "private_message"):
        m = o.get("message")
        out["message"] = {
            "text": as_str(m, "message"), "color": as_str(m, "color"),
            "bg_color": as_str(m, "bgColor"), "font": as_str(m, "font"),
            "orig": as_str(m, "orig"), "from_user": as_str(m, "fromUser"), "to_user": as_str(m, "toUser"),
        } if isinstance(m, dict) else None
    elif etype == "media_purchase":
        m = o.get("media")
        if isinstance(m, dict):
            mid = m.get("id")
            if num(mid):
                mid = str.__str__(mid)  # the text received
            elif not is_str(mid):
                mid = None
            out["media"] = {"id": mid, "name": as_str(m, "name"),
                            "type": as_str(m, "type"),
                            "tokens": as_int(m, "tokens")}
        else:
            out["media"] = None
    elif etype == "room_subject_change":
        out["subject"] = as_str(o, "subject")
    elif etype is None:
        out["raw"] = ev.get("object")  # any JSON type
    return out


def anonymous(ev):
    o = ev.get("object")
    t = o.get("tip") if isinstance(o, dict) else None
    return ev["method"] == "tip" and isinstance(t, dict) and t.anon_any


def raw(ev, expose):
    """The event as it came; an anonymous tip's user null unless exposed."""
    if not anonymous(ev) or expose:
        return ev
    out = dict(ev)
    out["object"] = dict(ev["object"])
    if "user" in out["object"]:
        out["object"]["user"] = None
    return out


def dump(v):
    """JSON text as the C writer makes it: compact, UTF-8, numbers as the
    text received."""
    if isinstance(v, Num):
        return str.__str__(v)
    if isinstance(v, dict):
        return "{" + ",".join(dump(k) + ":" + dump(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def events_of(body):
    doc = json.loads(body.decode("utf-8", errors="replace"), parse_int=Num,
                     parse_float=Num, parse_constant=Num, object_pairs_hook=obj_hook)
    for ev in doc.get("events", []):
        if isinstance(ev, dict) and is_str(ev.get("method")) and is_str(ev.get("id")):
            yield ev


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "*.body.json"))):
        name = path[: -len(".body.json")]
        with open(path, "rb") as f:
            evs = list(events_of(f.read()))
        outs = {
            ".jsonl": [dump(normalize(e, False)) for e in evs],
            ".expose.jsonl": [dump(normalize(e, True)) for e in evs],
            ".raw.jsonl": [dump(raw(e, False)) for e in evs],
        }
        for ext, lines in outs.items():
            with open(name + ext, "wb") as f:
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))


if __name__ == "__main__":
    main()
