import streamlit as st

st.set_page_config(page_title="Hello", page_icon="👋")
st.write("# Welcome to the multipage demo 👋")
st.sidebar.success("Pick a demo above.")
st.markdown("Each file under `pages/` is a page of its own, listed in the sidebar.")
