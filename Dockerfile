# syntax=docker/dockerfile:1

# Errand's one image: every role is `errand <role>` (api, worker, scheduler,
# migrate up, tenant create). docker-compose.yml shows them wired together.

# The builder must be at least the go directive of go.mod (the image sets
# GOTOOLCHAIN=local, so an older one fails instead of downloading).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# timetzdata embeds the zone database: tenants' and contacts' time zones
# must load whatever the runtime image ships.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags="-s -w" -o /errand ./cmd/errand \
 && mkdir -p /out/var/lib/errand

# distroless/static: no shell, no package manager; CA certificates for
# Twilio and Resend; runs as the unprivileged "nonroot" user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /errand /errand
# The local file store (exports, uploaded credentials). A named volume
# mounted here starts out owned by the nonroot user, as this directory is.
COPY --from=build --chown=65532:65532 /out/var/lib/errand /var/lib/errand
ENV ERRAND_HTTP_ADDR=0.0.0.0:8080 \
    ERRAND_DATA_DIR=/var/lib/errand
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/errand"]
CMD ["api"]
