# The Go image for deploy/Dockerfile's GO_IMAGE: this machine's Go (/usr/local/go, the context) on Debian.
FROM writeback-local/debian:bookworm
COPY . /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
