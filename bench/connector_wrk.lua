-- wrk script: POST one prebuilt /v1/batch body of 100 track messages, over and over.
-- The body file and write key come from the environment (BENCH_BODY, BENCH_AUTH).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.path = "/v1/batch"
