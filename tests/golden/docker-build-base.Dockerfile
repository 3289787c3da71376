FROM python:3.11-slim
COPY root/ /
ENV PIP_CERT="/etc/spacehub-build/ca.crt" SSL_CERT_FILE="/etc/spacehub-build/ca.crt"
