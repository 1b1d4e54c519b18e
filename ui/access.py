"""Who may use the app: the optional shared password gate and the read-only demo notice.

The password lives in Streamlit's secrets (``.streamlit/secrets.toml`` on the server, or the hosting
platform's secrets store), never in the repository::

    [auth]
    password = "a long shared phrase"

Without it the app is open (the default for a laptop). With it, every session must enter the password
once; the comparison is constant-time (``hmac.compare_digest``) and a wrong try waits a moment.
Demo mode (``PREFLIGHT_DEMO=1``) is enforced in the engine (``engine.access``); pages only explain it.
"""

from __future__ import annotations

import hmac
import time

import streamlit as st

from engine.access import DEMO_ENV, demo_mode

AUTH_KEY = "_preflight_authenticated"
WRONG_PASSWORD_DELAY_S = 1.0


def configured_password() -> str | None:
    """``[auth] password`` from Streamlit's secrets, or None when unset (no secrets file at all included)."""
    try:
        auth = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - no secrets.toml, or an unreadable one: no password configured
        return None
    if auth is None or not hasattr(auth, "get"):
        return None
    password = auth.get("password")
    return str(password) if password else None


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of UTF-8 bytes (no early exit that times could reveal)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def password_gate() -> None:
    """Stop this run with a password form unless no password is configured or this session entered it."""
    expected = configured_password()
    if expected is None or st.session_state.get(AUTH_KEY):
        return
    st.title("Preflight")
    with st.form("preflight-login"):
        given = st.text_input("Team password", type="password", key="_preflight_password")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if password_matches(given or "", expected):
            st.session_state[AUTH_KEY] = True
            st.session_state.pop("_preflight_password", None)
            st.rerun()
        time.sleep(WRONG_PASSWORD_DELAY_S)
        st.error("Wrong password.")
    st.stop()


def demo_notice(what: str) -> bool:
    """In demo mode, say once at the top of the page which controls are off and why; True in demo mode."""
    if not demo_mode():
        return False
    st.info(f"This is a read-only demo ({DEMO_ENV} is set): {what} are turned off. Estimates, readiness and "
            "reports still work.", icon=":material/lock:")
    return True
