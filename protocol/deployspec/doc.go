// Package deployspec reads the YAML form in which operators author a
// deployment (docs/protocol.md section 7) and converts it, unit by unit, into a
// [protocol.Deployment] ready to sign.
//
// The YAML is validated before anything is converted: unknown fields,
// waves that do not increase or do not end at 100, a percent with more than
// 2 decimals, a fraction or factor with more than 3, an unparsable cohort
// expression or duration each give an error naming the line. Decimal
// values are read from their text, never through floating point, so
// "0.29" is exactly 29 basis points.
//
// An example:
//
//	id: kws-1.4.0
//	seq: 7
//	manifest: kws-1.4.0.cose
//	target_cohort: region:us-east AND hw:rev2
//	waves:
//	  - {percent: 1, bake: 10m}
//	  - {percent: 25, bake: 30m}
//	  - {percent: 100, bake: 0s}
//	gates:
//	  max_failed: 2
//	  max_error_rate: 0.02
//	  max_latency_p99: 80ms
//	  max_latency_regression: 1.2
//	  min_reports: 3
//	on_failure: rollback
//	node_timeout: 30m
//	max_concurrent: 20
//	expires: 72h
package deployspec
