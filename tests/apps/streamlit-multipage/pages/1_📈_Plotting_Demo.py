import numpy as np
import streamlit as st

st.set_page_config(page_title="Plotting Demo", page_icon="📈")
st.markdown("# Plotting demo 📈")
rows = np.cumsum(np.random.default_rng(7).standard_normal((20, 1)), axis=0)
st.line_chart(rows)
st.write(f"Plotted {len(rows)} points")
