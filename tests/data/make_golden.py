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

Numbers follow cJSON, which reads every number as a double: integers are
rounded to 53 bits, and integral values print as integers.
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


def num(v):
    return isinstance(v, float)


def as_str(d, k):
    v = d.get(k)
    return v if isinstance(v, str) else None


def as_bool(d, k):
    v = d.get(k)
    return v if isinstance(v, bool) else None


def as_int(d, k):
    v = d.get(k)
    if num(v) and v.is_integer() and -I64 <= v < I64:
        return int(v)
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
    if not isinstance(u, dict) or not isinstance(u.get("username"), str):
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
                          "is_anon": as_bool(t, "isAnon"), "message": msg}
            if out["tip"]["is_anon"] is True and not expose:
                out["user"] = None
        else:
            out["tip"] = None
    elif etype in ("chat_message", "private_message"):
        m = o.get("message")
        out["message"] = {
            "text": as_str(m, "message"), "color": as_str(m, "color"),
            "bg_color": as_str(m, "bgColor"), "font": as_str(m, "font"),
            "from_user": as_str(m, "fromUser"), "to_user": as_str(m, "toUser"),
        } if isinstance(m, dict) else None
    elif etype == "media_purchase":
        m = o.get("media")
        if isinstance(m, dict):
            mid = m.get("id")
            if num(mid) and not math.isfinite(mid):
                mid = None  # 1e999: cJSON reads infinity
            elif num(mid):
                mid = str(int(mid)) if mid.is_integer() and -I64 <= mid < I64 \
                    else "%.17g" % mid
            elif not isinstance(mid, str):
                mid = None
            out["media"] = {"id": mid, "name": as_str(m, "name"),
                            "type": as_str(m, "type"),
                            "tokens": as_int(m, "tokens")}
        else:
            out["media"] = None
    elif etype == "room_subject_change":
        out["subject"] = as_str(o, "subject")
    elif etype is None:
        out["raw"] = obj
    return out


def dump(v):
    """JSON text as the C writer makes it: compact, UTF-8, numbers as cJSON
    holds them."""
    if isinstance(v, float):
        if v.is_integer() and -I64 <= v < I64:
            return str(int(v))
        return repr(v)
    if isinstance(v, dict):
        return "{" + ",".join(dump(k) + ":" + dump(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def events_of(body):
    doc = json.loads(body.decode("utf-8", errors="replace"), parse_int=float)
    for ev in doc.get("events", []):
        if isinstance(ev, dict) and isinstance(ev.get("method"), str) \
                and isinstance(ev.get("id"), str):
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
            ".raw.jsonl": [dump(e) for e in evs],
        }
        for ext, lines in outs.items():
            with open(name + ext, "wb") as f:
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))


if __name__ == "__main__":
    main()
