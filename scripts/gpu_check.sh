#!/usr/bin/env bash
# The one-shot GPU check. Runs ON THE LENT GPU MACHINE, from the repo root, with no cargo and no
# network: everything it runs was built here by scripts/gpu_bundle.sh and travels as `carry: ["bundle"]`.
# See docs/GPU-CHECK.md for the exact device call.
#
# Steps (each under `timeout`, all inside GPU_CHECK_BUDGET_S, default 450 s; a failing step is
# recorded and the script goes on):
#   0. unpack bundle/bins.tar.xz to $GPU_CHECK_WORK (default /tmp/gpu_check)
#   1. LD_LIBRARY_PATH += <site-packages>/nvidia/{cu13,cudnn}/lib of python3 (PyTorch's wheels)
#   2. nvidia-smi; `engine info` (decides whether a CUDA device is usable)
#   3. the device-aware test executables (GPU_CHECK_TESTS_RE), all at once, with ENGINE_REQUIRE_CUDA=1 ENGINE_POISON=1
#      ENGINE_FIXTURES_DIR=tests/fixtures: pass/fail per binary and the failing test names
#   4. bundled bench executables with short measurement times (CPU benches: only with GPU_CHECK_BENCHES=1)
#   5. `engine bench-step` (ResNet-50, batch 256, 224², fp16) and `engine bench-ops`, from here on with
#      ENGINE_CUDNN_SEARCH=exhaustive unless set (PyTorch's side runs with cudnn.benchmark on)
#   6. tools/torch_gpu_bench.py: PyTorch AMP channels_last ResNet-50 step, the same ops, ceilings
#   6b. generative models: `engine bench-stylize` (512² b8, 224² b32; f32, f16) and `engine
#      bench-pix2pix` (256², b1 and b8) beside tools/torch_gpu_bench_generative.py
#   6c. `engine train --fp16 --device cuda` on a real folder (tests/data: photographs and textures
#      as two classes; the ResNet-50 preset at 224 px, a few steps): the trainer's whole path on the
#      GPU (loader, FP16 loss scaling, evaluation, checkpoint); its metrics.jsonl goes to $OUT
#   6d. `engine bench-step --host-batches` (the step of 5 fed a fresh host batch every step through
#      engine train's input path), a few steps: what feeding the GPU costs
#   7. tools/gpu_check_report.py: ONE table (op, ours, baseline, ratio, % of ceiling)
# Results: $OUT (default ./gpu_check_out): gpu_check.log, tests.log, benches.log, results.json, table.md.
# Without a usable CUDA driver the GPU steps are reported as "no CUDA driver" and the script exits 0
# (GPU_CHECK_CPU_TESTS=1 still runs the test executables, without ENGINE_REQUIRE_CUDA).
# GPU_CHECK_SMOKE=1 (for the build machine): CPU-sized benchmarks (engine on the CPU, torch --dry-run)
# and the test executables without ENGINE_REQUIRE_CUDA, to check the script and the table end to end.
# GPU_CHECK_FAKE=1 (for the build machine): the smoke sizes on `--device cuda` over the fake GPU
# (cuda/fakegpu/: the driver, cuBLAS and cuDNN stand-ins that `cargo test --features cuda,cuda-emu`
# links into target/debug/fakegpu, or GPU_CHECK_FAKE_LIB), with the tests under ENGINE_REQUIRE_CUDA:
# the bundle's own CUDA path (module loading, streams, cuDNN plans, every stage) end to end.
# Exit status: 0 when the check ran (whatever it found), 1 when the bundle is missing.
set -u
set -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
OUT="${OUT:-$REPO/gpu_check_out}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu_check}"
BUDGET="${GPU_CHECK_BUDGET_S:-450}"
TEST_TIMEOUT="${GPU_CHECK_TEST_TIMEOUT_S:-150}"
TESTS_BUDGET="${GPU_CHECK_TESTS_BUDGET_S:-240}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
SMOKE="${GPU_CHECK_SMOKE:-0}"
FAKE="${GPU_CHECK_FAKE:-0}"
SMOKE_DEV=cpu
if [[ "$FAKE" == 1 ]]; then
    SMOKE=1
    SMOKE_DEV=cuda
    FAKE_LIB="${GPU_CHECK_FAKE_LIB:-$REPO/target/debug/fakegpu}"
    if [[ ! -e "$FAKE_LIB/libcuda.so" ]]; then
        echo "GPU_CHECK_FAKE=1: no fake GPU in $FAKE_LIB; build it with \`cargo test --features cuda,cuda-emu --no-run\`" >&2
        exit 1
    fi
fi
# Channels-last, like the PyTorch baseline (AMP + channels_last); step 5 reruns it in NCHW if it fails.
STEP_ARGS=(--model resnet50 --batch 256 --image 224 --fp16 --channels-last --steps 20 --warmup 3 --device cuda)
OPS_ARGS=(--device cuda)
TORCH_ARGS=()
# Generative benchmarks: "name|engine subcommand and args"; names match the torch script's rows.
GEN=(
    "stylize.512px.f32|bench-stylize --batch 8 --image 512 --iters 10 --device cuda"
    "stylize.512px.f16|bench-stylize --batch 8 --image 512 --iters 10 --fp16 --device cuda"
    "stylize.224px.f32|bench-stylize --batch 32 --image 224 --iters 10 --device cuda"
    "stylize.224px.f16|bench-stylize --batch 32 --image 224 --iters 10 --fp16 --device cuda"
    "pix2pix.step.b1|bench-pix2pix --batch 1 --image 256 --steps 20 --device cuda"
    "pix2pix.step.b8|bench-pix2pix --batch 8 --image 256 --steps 10 --device cuda"
)
TORCH_GEN_ARGS=()
TRAIN_ARGS=(--recipe reproduction-2019 --fp16 --device cuda --data-format folder --train-dir tests/data
    --val-dir tests/data --epochs 3 --batch-size 8 --quiet)
if [[ "$SMOKE" == 1 ]]; then
    GEN=(
        "stylize.64px.f32|bench-stylize --batch 2 --image 64 --width 8 --iters 1 --warmup 1 --device $SMOKE_DEV"
        "pix2pix.step.b1|bench-pix2pix --batch 1 --image 32 --ngf 8 --ndf 8 --steps 1 --warmup 1 --device $SMOKE_DEV"
    )
    TORCH_GEN_ARGS=(--dry-run)
    STEP_ARGS=(--model resnet18 --batch 4 --image 32 --steps 2 --warmup 1 --device "$SMOKE_DEV")
    TRAIN_ARGS=(--recipe reproduction-2019 --fp16 --device "$SMOKE_DEV" --data-format folder --train-dir tests/data
        --val-dir tests/data --epochs 1 --batch-size 4 --depth 18 --width 8 --quiet)
    OPS_ARGS=(--device "$SMOKE_DEV" --shrink 64 --repeats 2 --iters 1)
    TORCH_ARGS=(--dry-run)
    GPU_CHECK_CPU_TESTS=1
fi

main() {
    local T0=$SECONDS
    say() { printf '[gpu_check %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
    # Seconds a step may take: min(its cap, what is left of the budget minus 40 s for the report).
    left() { local l=$((BUDGET - (SECONDS - T0) - 40)); ((l > $1)) && l=$1; echo "$l"; }
    # Stages to run (GPU_CHECK_STAGES, comma-separated): tests, step, ops, torch, gen, train, feed.
    want() { [[ ",${GPU_CHECK_STAGES:-tests,step,ops,torch,gen,train,feed}," == *",$1,"* ]]; }
    local STATE="$WORK/state"
    rm -rf "$STATE" && mkdir -p "$STATE"
    : >"$OUT/tests.log"
    : >"$OUT/benches.log"

    say "repo $REPO; results in $OUT; budget ${BUDGET}s"
    # ---- 0. the bundle
    local BIN="$WORK/bin"
    if [[ ! -f bundle/bins.tar.xz ]]; then
        say "ERROR: bundle/bins.tar.xz is missing: run scripts/gpu_bundle.sh on the build machine and pass carry: [\"bundle\"]"
        echo '{"status": "no_bundle"}' >"$OUT/results.json"
        return 1
    fi
    sed -n '1,7p' bundle/MANIFEST.txt 2>/dev/null
    rm -rf "$BIN" && mkdir -p "$BIN"
    if command -v xz >/dev/null; then
        timeout -k 5 120 tar -C "$BIN" -xJf bundle/bins.tar.xz
    else
        timeout -k 5 120 "$PYTHON" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            bundle/bins.tar.xz "$BIN"
    fi || { say "ERROR: could not unpack bundle/bins.tar.xz"; echo '{"status": "bad_bundle"}' >"$OUT/results.json"; return 1; }
    say "unpacked $(find "$BIN" -type f | wc -l) executables to $BIN"

    # ---- 1. loader path from PyTorch's wheels
    local SITE
    SITE="$(timeout -k 5 60 "$PYTHON" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)"
    if [[ -n "$SITE" ]]; then
        # Every lib folder of the nvidia-* wheels (cu13/lib holds cuBLAS and NVRTC, cudnn/lib cuDNN;
        # other layouts put them in cublas/lib, ...): all of them, cu13 and cudnn first.
        local d libdirs="$SITE/nvidia/cu13/lib:$SITE/nvidia/cudnn/lib"
        for d in "$SITE"/nvidia/*/lib; do
            [[ -d "$d" && ":$libdirs:" != *":$d:"* ]] && libdirs="$libdirs:$d"
        done
        export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "LD_LIBRARY_PATH += $SITE/nvidia/*/lib"
        for d in "$SITE"/nvidia/*/lib; do
            ls "$d" 2>/dev/null | grep -E '^lib(cublas|cublasLt|nvrtc|cudnn)\.so' | sed "s|^|    ${d#$SITE/}/|"
        done
    else
        say "python3 has no 'nvidia' wheels; relying on the system loader path"
    fi
    if [[ "$FAKE" == 1 ]]; then
        export LD_LIBRARY_PATH="$FAKE_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "GPU_CHECK_FAKE=1: LD_LIBRARY_PATH starts with the fake GPU ($FAKE_LIB)"
    fi

    # ---- 2. the GPU
    say "nvidia-smi:"
    if command -v nvidia-smi >/dev/null; then
        timeout -k 5 30 nvidia-smi 2>&1 | head -n 20
        timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
            --format=csv,noheader >"$STATE/gpu.txt" 2>&1
    else
        echo "    (no nvidia-smi: no NVIDIA driver on this machine)"
        echo "no nvidia-smi" >"$STATE/gpu.txt"
    fi
    say "engine info:"
    timeout -k 5 60 "$BIN/engine" info >"$STATE/info.txt" 2>&1
    echo "rc=$?" >>"$STATE/info.txt"
    sed 's/^/    /' "$STATE/info.txt"
    local GPU_OK=0 NO_GPU_REASON=""
    if grep -q '^cuda: cuda:0 available' "$STATE/info.txt"; then
        GPU_OK=1
    else
        NO_GPU_REASON="no CUDA driver: $(grep '^cuda:' "$STATE/info.txt" | head -n 1 | cut -c1-160)"
        say "$NO_GPU_REASON"
    fi
    echo "$GPU_OK" >"$STATE/gpu_ok"
    echo "$NO_GPU_REASON" >"$STATE/no_gpu_reason"

    # ---- 3. tests: the device-aware binaries (those that run each op on `test_devices()`), all at once
    # (16 cores, one GPU: each binary gets RAYON_NUM_THREADS threads for its CPU references); the
    # CPU-only binaries are CI's and are skipped here unless GPU_CHECK_ALL_TESTS=1.
    local RUN_TESTS=$GPU_OK
    [[ "${GPU_CHECK_CPU_TESTS:-0}" == 1 ]] && RUN_TESTS=1
    local GPU_TESTS_RE="${GPU_CHECK_TESTS_RE:-^(cuda_vs_cpu.*|cuda_memory|fixtures_.*|models_resnet|optim_fixtures|pix2pix_nets|pretrained_weights|stylizer_net)$}"
    local exe name t rc
    : >"$STATE/tests.tsv"
    local selected=()
    for exe in "$BIN"/tests/*; do
        [[ -x "$exe" ]] || continue
        name="$(basename "$exe")"
        if [[ "$RUN_TESTS" != 1 ]]; then
            printf '%s\tskipped\t0\t0\t0\tno CUDA driver\n' "$name" >>"$STATE/tests.tsv"
        elif [[ "${GPU_CHECK_ALL_TESTS:-0}" != 1 ]] && ! [[ "$name" =~ $GPU_TESTS_RE ]]; then
            printf '%s\tskipped\t0\t0\t0\tCPU-only (CI runs it)\n' "$name" >>"$STATE/tests.tsv"
        else
            selected+=("$exe")
        fi
    done
    t="$(left "$TEST_TIMEOUT")"
    ((t > TESTS_BUDGET)) && t=$TESTS_BUDGET
    want tests || { say "tests: not in GPU_CHECK_STAGES"; selected=(); }
    if ((${#selected[@]} > 0 && t >= 5)); then
        say "running ${#selected[@]} test binaries at once (timeout ${t}s each)"
        for exe in "${selected[@]}"; do
            name="$(basename "$exe")"
            (
                echo "==== $name ===="
                if [[ "$GPU_OK" == 1 ]]; then
                    RAYON_NUM_THREADS="${GPU_CHECK_TEST_THREADS:-3}" ENGINE_REQUIRE_CUDA=1 ENGINE_POISON=1 \
                        ENGINE_FIXTURES_DIR="$REPO/tests/fixtures" ENGINE_BIN="$BIN/engine" \
                        timeout -k 5 "$t" "$exe" 2>&1
                else
                    ENGINE_POISON=1 ENGINE_FIXTURES_DIR="$REPO/tests/fixtures" ENGINE_BIN="$BIN/engine" \
                        timeout -k 5 "$t" "$exe" 2>&1
                fi
                echo "==== $name: exit $? ===="
            ) >"$STATE/test_$name.log" &
        done
        wait
    fi
    for exe in "${selected[@]}"; do
        name="$(basename "$exe")"
        if [[ ! -s "$STATE/test_$name.log" ]]; then
            printf '%s\tskipped\t0\t0\t0\tout of time budget\n' "$name" >>"$STATE/tests.tsv"
            continue
        fi
        cat "$STATE/test_$name.log" >>"$OUT/tests.log"
        rc="$(tail -n 1 "$STATE/test_$name.log" | sed -E 's/.*exit ([0-9]+).*/\1/')"
        local passed failed ignored status failing
        passed="$(grep -Eo '[0-9]+ passed' "$STATE/test_$name.log" | awk '{s+=$1} END {print s+0}')"
        failed="$(grep -Eo '[0-9]+ failed' "$STATE/test_$name.log" | awk '{s+=$1} END {print s+0}')"
        ignored="$(grep -Eo '[0-9]+ ignored' "$STATE/test_$name.log" | awk '{s+=$1} END {print s+0}')"
        failing="$(grep -E '^test .* \.\.\. FAILED$' "$STATE/test_$name.log" | awk '{print $2}' | paste -sd' ' -)"
        case "$rc" in
            0) status=pass ;;
            124 | 137) status=timeout; failing="${failing:+$failing }(timed out after ${t}s)" ;;
            *) status=fail ;;
        esac
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$passed" "$failed" "$ignored" "$failing" >>"$STATE/tests.tsv"
        say "  $name: $status: $passed passed, $failed failed${failing:+: $failing}"
        # The first panic messages of a failing binary, so the reply's tail shows why.
        [[ "$status" == pass ]] || grep -E "panicked at|Error|error:" "$STATE/test_$name.log" | head -n 6 | cut -c1-300 | sed 's/^/      /'
    done

    # ---- 4. benches
    : >"$STATE/benches.tsv"
    local any_bench=0
    for exe in "$BIN"/benches/*; do
        [[ -x "$exe" ]] || continue
        any_bench=1
        name="$(basename "$exe")"
        if [[ "$GPU_OK" != 1 ]]; then
            printf '%s\tskipped\tno CUDA driver\n' "$name" >>"$STATE/benches.tsv"
            continue
        fi
        if [[ "${GPU_CHECK_BENCHES:-0}" != 1 ]]; then
            # The criterion benches time the CPU backend; `engine bench-ops` (stage ops) times the GPU
            # kernels, and kernels_cuda prints those same rows, so it would only repeat them.
            if [[ "$name" == kernels_cuda* ]]; then
                printf '%s\tskipped\tthe rows of engine bench-ops (GPU_CHECK_BENCHES=1 runs it)\n' "$name" >>"$STATE/benches.tsv"
            else
                printf '%s\tskipped\tCPU bench (GPU_CHECK_BENCHES=1 runs it)\n' "$name" >>"$STATE/benches.tsv"
            fi
            continue
        fi
        t="$(left 90)"
        if ((t < 5)); then
            printf '%s\tskipped\tout of time budget\n' "$name" >>"$STATE/benches.tsv"
            continue
        fi
        local args=(--bench)
        if timeout 10 "$exe" --help 2>&1 | grep -q -- '--measurement-time'; then
            args=(--bench --warm-up-time 1 --measurement-time 2 --noplot)
        fi
        say "bench $name ${args[*]} (timeout ${t}s)"
        echo "==== $name ${args[*]} ====" >>"$OUT/benches.log"
        ENGINE_FIXTURES_DIR="$REPO/tests/fixtures" timeout -k 5 "$t" "$exe" "${args[@]}" >>"$OUT/benches.log" 2>&1
        rc=$?
        echo "==== $name: exit $rc ====" >>"$OUT/benches.log"
        printf '%s\t%s\t\n' "$name" "$([[ $rc == 0 ]] && echo ok || echo "exit $rc")" >>"$STATE/benches.tsv"
    done
    ((any_bench)) || { say "no bench executables in the bundle"; echo "no bench executables in the bundle" >>"$OUT/benches.log"; }

    # ---- 5. engine benchmarks (each prints JSON; a missing GPU is reported in it, quickly)
    # cuDNN algorithms for every timed engine command from here on: exhaustive search, as the PyTorch
    # baselines run with torch.backends.cudnn.benchmark = True (the tests above keep the default
    # heuristic). Set ENGINE_CUDNN_SEARCH=heuristic to time the default instead.
    export ENGINE_CUDNN_SEARCH="${ENGINE_CUDNN_SEARCH:-exhaustive}"
    say "cuDNN algorithm choice for the engine benchmarks: $ENGINE_CUDNN_SEARCH"
    t="$(left "${GPU_CHECK_STEP_S:-150}")"
    # The step's arguments as last run (without --channels-last after the NCHW fallback): 6d reuses them.
    STEP_USED=("${STEP_ARGS[@]}")
    if want step && ((t >= 5)); then
        say "engine bench-step ${STEP_ARGS[*]} (timeout ${t}s)"
        timeout -k 5 "$t" "$BIN/engine" bench-step "${STEP_ARGS[@]}" \
            >"$STATE/engine_step.json" 2>"$STATE/engine_step.err"
        echo "  exit $?"
        tail -n 5 "$STATE/engine_step.err" | sed 's/^/    /'
        t="$(left "${GPU_CHECK_STEP_S:-150}")"
        if ! grep -q '"status": *"ok"' "$STATE/engine_step.json" && [[ " ${STEP_ARGS[*]} " == *" --channels-last "* ]] && ((t >= 5)); then
            # The channels-last step failed: keep its log, measure the NCHW step instead.
            cp "$STATE/engine_step.err" "$OUT/engine_step_channels_last.err" 2>/dev/null
            local nchw=()
            for a in "${STEP_ARGS[@]}"; do [[ "$a" == --channels-last ]] || nchw+=("$a"); done
            STEP_USED=("${nchw[@]}")
            say "channels-last step failed (log: engine_step_channels_last.err); engine bench-step ${nchw[*]} (timeout ${t}s)"
            timeout -k 5 "$t" "$BIN/engine" bench-step "${nchw[@]}" \
                >"$STATE/engine_step.json" 2>"$STATE/engine_step.err"
            echo "  exit $?"
            tail -n 5 "$STATE/engine_step.err" | sed 's/^/    /'
        fi
    fi
    t="$(left "${GPU_CHECK_OPS_S:-150}")"
    if want ops && ((t >= 5)); then
        say "engine bench-ops ${OPS_ARGS[*]} (timeout ${t}s)"
        timeout -k 5 "$t" "$BIN/engine" bench-ops "${OPS_ARGS[@]}" >"$STATE/engine_ops.json" 2>"$STATE/engine_ops.err"
        echo "  exit $?"
        sed 's/^/    /' "$STATE/engine_ops.err" | tail -n 20
    fi

    # ---- 6. PyTorch baselines and ceilings
    t="$(left "${GPU_CHECK_TORCH_S:-240}")"
    if want torch && ((t >= 5)); then
        say "tools/torch_gpu_bench.py (timeout ${t}s)"
        timeout -k 5 "$t" "$PYTHON" tools/torch_gpu_bench.py "${TORCH_ARGS[@]}" ${GPU_CHECK_TORCH_ARGS:-} \
            --out "$STATE/torch.json" 2>"$STATE/torch.err"
        echo "  exit $?"
        grep -E '^torch:|Error|error' "$STATE/torch.err" | tail -n 30 | sed 's/^/    /'
    fi

    # ---- 6b. generative models: ours, then PyTorch's
    mkdir -p "$STATE/gen"
    local spec name
    for spec in "${GEN[@]}"; do
        name="${spec%%|*}"
        t="$(left 60)"
        want gen && ((t >= 5)) || break
        say "engine ${spec#*|} (timeout ${t}s)"
        # shellcheck disable=SC2086 # the spec is a word list
        timeout -k 5 "$t" "$BIN/engine" ${spec#*|} >"$STATE/gen/$name.json" 2>"$STATE/gen/$name.err"
        echo "  exit $?"
    done
    t="$(left 150)"
    if want gen && ((t >= 5)); then
        say "tools/torch_gpu_bench_generative.py (timeout ${t}s)"
        timeout -k 5 "$t" "$PYTHON" tools/torch_gpu_bench_generative.py "${TORCH_GEN_ARGS[@]}" \
            --out "$STATE/torch_gen.json" 2>"$STATE/torch_gen.err"
        echo "  exit $?"
        grep -E '^torch:|Error|error' "$STATE/torch_gen.err" | tail -n 10 | sed 's/^/    /'
    fi

    # ---- 6c. a real training run with --fp16 on the bundled photos (last: the lowest priority)
    t="$(left "${GPU_CHECK_TRAIN_S:-90}")"
    if want train && ((t >= 5)); then
        say "engine train ${TRAIN_ARGS[*]} (timeout ${t}s)"
        rm -rf "$STATE/train_folder"
        timeout -k 5 "$t" "$BIN/engine" train "${TRAIN_ARGS[@]}" --out "$STATE/train_folder" \
            >"$STATE/train.log" 2>&1
        echo "  exit $?"
        tail -n 5 "$STATE/train.log" | sed 's/^/    /'
        cp "$STATE/train.log" "$OUT/train.log"
        cp "$STATE/train_folder/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null \
            && grep '"kind":"epoch"' "$OUT/train_metrics.jsonl" | sed 's/^/    /'
    fi

    # ---- 6d. the training step fed from host memory (engine train's input path: cast, pinned
    # upload, copy stream, one step ahead): its images/s against the device-resident step of 5
    t="$(left "${GPU_CHECK_FEED_S:-60}")"
    if want feed && ((t >= 5)); then
        local feed=() skip=0
        for a in "${STEP_USED[@]}"; do
            if ((skip)); then skip=0; continue; fi
            case "$a" in --steps|--warmup) skip=1 ;; *) feed+=("$a") ;; esac
        done
        local feed_steps=8 feed_warmup=2
        [[ "$SMOKE" == 1 ]] && feed_steps=2 feed_warmup=1
        feed+=(--steps "${GPU_CHECK_FEED_STEPS:-$feed_steps}" --warmup "$feed_warmup" --host-batches)
        say "engine bench-step ${feed[*]} (timeout ${t}s)"
        timeout -k 5 "$t" "$BIN/engine" bench-step "${feed[@]}" \
            >"$STATE/engine_step_host.json" 2>"$STATE/engine_step_host.err"
        echo "  exit $?"
        tail -n 3 "$STATE/engine_step_host.err" | sed 's/^/    /'
    fi

    # ---- 7. the table
    say "report"
    timeout -k 5 60 "$PYTHON" tools/gpu_check_report.py --state "$STATE" --out "$OUT" \
        || say "ERROR: the report failed (raw JSON is in $STATE)"
    say "done in $((SECONDS - T0))s; files in $OUT: $(ls "$OUT" | paste -sd' ' -)"
    return 0
}

main "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
