# One image for every role of cleave: `cleave node`, `cleave router` and
# `cleave operator` (and the client verbs, and cleave-loadgen). The binary
# is static (CGO_ENABLED=0) and runs as an unprivileged user.
#
#   docker build \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t cleave:$(git describe --tags --always --dirty) .
#
# The build arguments are what the Makefile stamps into `cleave version`
# (its LDFLAGS); without them the binary reports "dev".

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${DATE}" \
      -o /out/cleave ./cmd/cleave \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/cleave-loadgen ./cmd/cleave-loadgen \
 && mkdir -p /out/data && chown 65532:65532 /out/data

# distroless/static: CA certificates, /etc/passwd with "nonroot" (65532),
# no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cleave /out/cleave-loadgen /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /var/lib/cleave
USER 65532:65532
WORKDIR /var/lib/cleave
EXPOSE 7400 7401 7946 7946/udp 9090
ENTRYPOINT ["cleave"]
CMD ["--help"]
