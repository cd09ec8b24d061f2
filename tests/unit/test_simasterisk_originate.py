"""The simulated Asterisk's Originate of a phone (PJSIP), in the order a real one sends it.

Asterisk's Originate (main/pbx.c pbx_outgoing_attempt) creates the channel first
(Newchannel, then Newexten AppDial2 from ast_dial_prerun), and only then sets the
Originate's variables on it and its CallerID (NewCallerid, NewConnectedLine); the Dial
begins after that. The recorded Local click-to-dial
(tests/fixtures/asterisk-caller-names/local-click-to-dial.ami) shows it: the `;1` half's
Newchannel and AppDial2 Newexten carry `CTI_CALLID=` empty, its VarSet comes after; the
CallerID events come after the variables in e2. That code is the same for every channel
technology, so a PJSIP phone's first events carry no CTI tag either: the daemon's tracker
starts the click-to-dial on the first event after them (ringing, busy), as with a real one.
"""

from __future__ import annotations

from adapters.simasterisk.model import Event, Model, Ring

T0 = 1796170000.0


def _chanvar(event: Event, name: str) -> str | None:
    values = event.get("ChanVariable") or []
    assert isinstance(values, list)
    for item in values:
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def test_a_phone_is_originated_before_it_gets_the_variables() -> None:
    model = Model()
    _ch, out = model.originate(
        "PJSIP/1001",
        T0,
        action_id="cc-dial-3",
        context="cc-outbound",
        exten="02079460018",
        variables={"CC_INTERACTION_ID": "3", "CTI_CALLID": "cc-dial-3"},
        channel_id="cc-dial-3",
    )
    names = [str(e["Event"]) for e in out.events]
    assert names == ["Newchannel", "Newexten", "DialBegin"]
    first, appdial, dial = out.events
    assert appdial["Application"] == "AppDial2"
    assert _chanvar(first, "CTI_CALLID") == "" and _chanvar(appdial, "CTI_CALLID") == ""
    assert dial["DestChanVariable"] == ["CTI_CALLID=cc-dial-3", "CTI_QUEUE="]
    ring = next(e for e in out.effects if isinstance(e, Ring))
    rung = model.ringing(ring.uniqueid, T0 + 0.1).events
    assert [(e["Event"], _chanvar(e, "CTI_CALLID")) for e in rung] == [("Newstate", "cc-dial-3")]


def test_an_originate_caller_id_comes_after_the_channel_like_e2() -> None:
    """e2 (Originate with a CallerID): Newchannel with `<unknown>`, then NewCallerid and
    NewConnectedLine with the CallerID given."""
    model = Model()
    _ch, out = model.originate(
        "PJSIP/2001",
        T0,
        action_id="x-1",
        application="ChanSpy",
        data="PJSIP/1001,q",
        caller_id=("5551005", "Bridge Me"),
    )
    rows = [(e["Event"], e.get("CallerIDNum"), e.get("ConnectedLineNum")) for e in out.events]
    assert rows == [
        ("Newchannel", "<unknown>", "<unknown>"),
        ("Newexten", "<unknown>", "<unknown>"),
        ("NewCallerid", "5551005", "<unknown>"),
        ("NewConnectedLine", "5551005", "5551005"),
        ("DialBegin", None, None),
    ]
    assert out.events[-1]["DestCallerIDName"] == "Bridge Me"


def test_an_originate_application_runs_without_a_newexten() -> None:
    """The daemon's spy (Originate with Application ChanSpy). Asterisk runs the
    application on the answered channel without touching its dialplan location, and
    sends Newexten only when context, exten or priority change (manager_channels.c
    channel_newexten, ast_channel_snapshot_cep_equal); a real 22.10.1 spying from
    Local/2011@tb-answer-stay sent none after the AppDial2 one. CoreShowChannels still
    lists the application the channel runs."""
    model = Model()
    _ch, out = model.originate(
        "PJSIP/2001", T0, action_id="cc-spy-1", application="ChanSpy", data="PJSIP/1001,q"
    )
    ring = next(e for e in out.effects if isinstance(e, Ring))
    answered = model.answer(ring.uniqueid, T0 + 1).events
    assert [str(e["Event"]) for e in answered] == ["Newstate", "DialEnd", "OriginateResponse"]
    assert answered[-1]["Application"] == "ChanSpy" and answered[-1]["Reason"] == "4"
    listed = model.core_show_channels(None, T0 + 2)[0]
    assert (listed["Application"], listed["ApplicationData"]) == ("ChanSpy", "PJSIP/1001,q")
