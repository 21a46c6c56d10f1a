# Builds the single fmn binary on Debian, as the project's own machines are.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/fmn ./cmd/fmn

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/fmn /usr/local/bin/fmn
COPY testdata/fedmsg-meta.jsonl /usr/share/fmn/demo.jsonl
USER nobody
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/fmn"]
CMD ["serve"]
