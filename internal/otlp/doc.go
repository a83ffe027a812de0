// Package otlp writes the OpenTelemetry protocol (OTLP/HTTP, protobuf)
// without the OpenTelemetry SDK: the few messages lambdarasp sends (its
// own spans, metrics and alert logs) are encoded by hand with protowire,
// and the standard OTEL_* variables that say where they go are read here,
// in one place, for both the wrapper and the extension.
//
// Why not the SDK and its OTLP exporter: they cost a Go Lambda function
// about 2 ms more at cold start and link in gRPC (a 2.8 MB test binary
// becomes 20 MB), where this package costs neither (bench/otel_test.go);
// and lambdarasp must decide itself when the bytes leave (before the
// environment freezes, never on the response's path).
package otlp
