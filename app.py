"""Preflight: the Streamlit entry point. Registers the pages with st.navigation and draws the one
setting every page shares, the currency (ui/currency.py), in the sidebar.

The page scripts live in views/ rather than pages/: Streamlit treats a pages/ folder beside the
entry script as its legacy auto-discovered multipage app, which can run a page without this file
after a server restart. See README, "Why views/ and not pages/".
"""

from pathlib import Path

import streamlit as st

from ui.access import password_gate
from ui.currency import currency_setting
from ui.navigation import navigation_pages

# A shipped icon: a Material-symbol favicon would be fetched from Google Fonts, which fails offline.
st.set_page_config(page_title="Preflight", page_icon=str(Path(__file__).parent / "assets" / "preflight-icon.png"), layout="wide")
password_gate()  # a no-op unless [auth] password is set in Streamlit's secrets
page = st.navigation(navigation_pages())
currency_setting()  # one sidebar setting for every page (ui/currency.py): money in USD, CNY or EUR
page.run()
