-- wrk script: POST the JSON body in the file named by BENCH_POST_BODY (written by bench/run.py)
local file = assert(io.open(os.getenv("BENCH_POST_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
