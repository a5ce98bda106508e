"""cb2mqtt on what real upstreams do (issue 11): with payload = raw an
integer above 2^53 is republished as the text received (and the normalized
payload keeps media.id's digits); a tip whose isAnon is not JSON false
hides the tipper in the event payload (both modes) and in the retained
state's last_tip. Real mosquitto, the fake API on loopback, the real
bridge."""

import cbtest

TOKEN = "tokReal-00112233445566"
BIG = 9007199254740993  # 2^53 + 1


def _run(payload):
    broker = cbtest.Mosquitto().start()
    api = cbtest.fake_api({"alice": TOKEN}, max_wait=0.5)
    sub = cbtest.Subscriber(broker, topics=("cb/#",), qos=1).start()
    cbtest.on_cleanup(sub.stop)
    api.add_events("alice", [
        cbtest.api_event("mediaPurchase", user=cbtest.api_user("bob"),
                         media={"id": BIG, "name": "set", "type": "photos", "tokens": BIG}),
        cbtest.api_event("tip", user=cbtest.api_user("secretfan"),
                         tip={"tokens": 7, "isAnon": "true", "message": ""}),
        cbtest.api_event("tip", user=cbtest.api_user("secretfan2"),
                         tip={"tokens": 8, "isAnon": None, "message": ""}),
    ])
    env = cbtest.bridge_env(broker.url, api.base_url, cbtest.tempdir("cbtest-state-"),
                            [("alice", TOKEN)], {"CB2MQTT_EVENTS_PAYLOAD": payload})
    bridge = cbtest.start_bridge(env)
    sub.wait_for(lambda m: m.topic == "cb/alice/state" and b'"tokens":8' in m.payload,
                 timeout=20, what="the state after the last tip")
    return bridge, sub


def _common(bridge, sub):
    logs = bridge.stderr_text() + bridge.stdout_text()
    assert "secretfan" not in logs, "an anonymous tipper reached the log"
    for m in sub.messages():
        assert b"secretfan" not in m.payload, "tipper leaked on %s: %r" % (m.topic, m.payload)
    state = [m for m in sub.messages() if m.topic == "cb/alice/state"][-1].json()
    assert state["last_tip"]["username"] is None and state["last_tip"]["is_anon"] is True, state
    cbtest.assert_no_secret(logs, TOKEN, "the bridge's log")
    bridge.stop()


def test_raw_payload_keeps_big_numbers_and_hides_tippers():
    bridge, sub = _run("raw")
    media = [m for m in sub.messages() if m.topic == "cb/alice/media_purchase"]
    assert len(media) == 1
    assert b'"id":%d,' % BIG in media[0].payload, media[0].payload
    assert b'"tokens":%d}' % BIG in media[0].payload, media[0].payload
    tips = [m.json() for m in sub.messages() if m.topic == "cb/alice/tip"]
    assert [t["object"]["user"] for t in tips] == [None, None], tips
    _common(bridge, sub)


def test_normalized_payload_keeps_media_id_and_hides_tippers():
    bridge, sub = _run("normalized")
    media = [m.json() for m in sub.messages() if m.topic == "cb/alice/media_purchase"]
    assert media[0]["media"]["id"] == str(BIG) and media[0]["media"]["tokens"] == BIG, media
    tips = [m.json() for m in sub.messages() if m.topic == "cb/alice/tip"]
    assert [(t["user"], t["tip"]["is_anon"]) for t in tips] == [(None, True), (None, True)], tips
    _common(bridge, sub)


if __name__ == "__main__":
    cbtest.run([test_raw_payload_keeps_big_numbers_and_hides_tippers,
                test_normalized_payload_keeps_media_id_and_hides_tippers])
