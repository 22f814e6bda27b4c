#!/usr/bin/env bash
# Adds the seed inputs to the fuzz corpora: the example and the known-bad rule files,
# and a few Prometheus answers (success of each result type, errors, warnings,
# non-JSON bodies, a truncated one). The corpora kept in fuzz/corpus/ grew from these.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/rule_file corpus/prom_response
for f in ../rules/*.yaml ../tests/fixtures/bad/*.yaml; do
  cp "$f" "corpus/rule_file/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
done
p=corpus/prom_response
printf '%s' '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a","__name__":"up"},"value":[1700000000.5,"0.25"]},{"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]},{"metric":{"pod":"c"},"value":[1700000000.5,"+Inf"]},{"metric":{},"value":[1700000000.5,"-Inf"]}]}}' >$p/seed-vector.json
printf '%s' '{"status":"success","data":{"resultType":"vector","result":[]}}' >$p/seed-vector-empty.json
printf '%s' '{"status":"success","warnings":["partial response: store unavailable"],"data":{"resultType":"scalar","result":[1700000000,"3"]}}' >$p/seed-scalar-warnings.json
printf '%s' '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"pod":"a"},"values":[[1700000000,"1"],[1700000010.5,"NaN"],[1700000020,"1e308"]]}]}}' >$p/seed-matrix.json
printf '%s' '{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}' >$p/seed-string.json
printf '%s' '{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}' >$p/seed-error-bad-data.json
printf '%s' '{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}' >$p/seed-error-execution.json
printf '%s' '{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation","warnings":["x"]}' >$p/seed-error-timeout.json
printf '%s' 'Service Unavailable' >$p/seed-503-text
printf '%s' '<html><body>502 Bad Gateway</body></html>' >$p/seed-html
printf '%s' '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1.5,"2"' >$p/seed-truncated.json
printf '%s' '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"x"},"value":[1e400,"-0.0"]},{"value":[-1,"0x10"]}]},"infos":["ignored"]}' >$p/seed-odd.json
