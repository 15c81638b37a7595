#!/bin/sh
# The main job: one-step distillation on the best Vulkan device present
# (lavapipe when there is no GPU). Installs what is missing, builds, then
#  1. distills an exact Gaussian mixture in 8 dimensions (12 modes, weights
#     1:20) into a one-step MLP generator with SiD and prints its mode weights
#     and energy distance;
#  2. distills the shipped Fashion-MNIST teacher (models/fmnist32_teacher.*,
#     32x32, class-conditional) into a one-step generator with SiD: 100 steps,
#     about a minute and a half on 2 lavapipe cores (as 2 ranks), 3000 on a GPU;
#  3. writes one grid, same labels and noise: teacher at 35 network
#     evaluations | this run's one-step student | the shipped one-step student;
#  4. reports FD_fmnist (Frechet distance in the shipped classifier's
#     features, not Inception FID) of each against the test split, N printed,
#     and the measured speed of one-step against 35-step sampling.
# Everything lands in runs/main/. Re-running continues from the checkpoints.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
bin=build/vkdistill
out=runs/main
mkdir -p "$out"
$bin info | tee "$out/device.txt"
teacher="--model models/fmnist32_teacher.json --weights models/fmnist32_teacher.safetensors"
shipped="--model models/fmnist32_student.json --weights models/fmnist32_student.safetensors --one-step 2.5"
if grep -q '^device:.*(CPU)' "$out/device.txt"; then
    # lavapipe on 2 cores: ~25 images/s for a distillation step of this UNet as one process, ~35
    # as 2 ranks; 35-step sampling of N teacher images would take N x 0.17 s, so the teacher's
    # FD is the one recorded with it.
    gmm_steps=600 student_steps=${STUDENT_STEPS:-100} fd_n=2000 teacher_fd=recorded
    cpu=1
else
    gmm_steps=3000 student_steps=${STUDENT_STEPS:-3000} fd_n=10000 teacher_fd=measure
    cpu=0
fi
# On a CPU of several cores the Fashion-MNIST distillation runs as 2 ranks in this one process
# (--ranks 2: a thread and a core each, no MPI), each half of the batch of 32 (the gradients
# averaged: the same method, summed in another order; the bits of `mpirun -n 2`). On the 2-core
# VM 2 ranks made 34.8 images a second against one process's 25.4
# (docs/performance_history.md, "The main job as 2 ranks", "Ranks as threads"). MAIN_RANKS=1
# keeps one rank.
launch=""
if [ "$cpu" = 1 ] && [ "${MAIN_RANKS:-2}" != 1 ] && [ "$(nproc)" -ge 2 ]; then launch="--ranks 2"; fi

echo "== 1. 12 Gaussians in 8-D (weights 1:20) -> one-step MLP (SiD, $gmm_steps steps)"
$bin distill samples/gmm_gauss8d_sid.json --out "$out/gmm8d_sid" --steps "$gmm_steps" --resume auto
# 10,000 one-step samples (at SiD's default sigma_init, 2.5) scored as tools/gmm_suite.sh scores them,
# the target weights beside the student's.
$bin sample --model "$out/gmm8d_sid/student.json" --weights "$out/gmm8d_sid/student.safetensors" --one-step 2.5 \
    --n 10000 --seed 7 --npz "$out/gmm8d_sid/samples.npz" 2>/dev/null
/usr/bin/python3 tools/gmm_suite.py eval models/gmm_gauss8d.json "$out/gmm8d_sid/samples.npz" >"$out/gmm8d_sid/stats.json"
/usr/bin/python3 - "$out/gmm8d_sid/stats.json" models/gmm_gauss8d.json <<'PY'
import json, sys
s, g = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
w = [v / sum(g["weights"]) for v in g["weights"]]
print("  %d / %d modes recovered (share >= half the weight), max weight error %.3f, energy distance %.4f "
      "(exact-vs-exact floor %.4f), %.0f%% of points on a mode; N = %d" % (
          s["recovered"], s["modes"], s["max_dw"], s["energy"], s["floor"], 100 * s["on_mode"], s["n"]))
print("  mode weights, target:  " + " ".join("%.3f" % v for v in w))
print("  mode weights, student: " + " ".join("%.3f" % v for v in s["weights"]))
PY

echo "== 2. the shipped teacher -> one-step student (samples/fmnist32_sid.json, $student_steps steps of 32${launch:+, 2 ranks of 16})"
# shellcheck disable=SC2086
$bin $launch distill samples/fmnist32_sid.json --out "$out/fmnist_sid" --steps "$student_steps" --resume auto
student="--model $out/fmnist_sid/student.json --weights $out/fmnist_sid/student.safetensors --one-step 2.5"

echo "== 3. teacher (35 evaluations) | this run's student | the shipped student: same labels and noise"
# shellcheck disable=SC2086
{
    $bin sample $teacher --n 64 --steps 18 --seed 7 --npz "$out/grid_teacher.npz"
    $bin sample $student --n 64 --seed 7 --npz "$out/grid_student.npz"
    $bin sample $shipped --n 64 --seed 7 --npz "$out/grid_shipped.npz"
} 2>&1 | grep 'vkdistill: wrote' | tee "$out/speed.txt"
$bin montage "$out/grid_teacher.npz" "$out/grid_student.npz" "$out/grid_shipped.npz" -o "$out/side_by_side.png"

echo "== 4. FD_fmnist against the test split (N = $fd_n each)"
ref=$out/fd_ref_fmnist_test32.npz  # the test split at 32x32, the classifier's own size
[ -f "$ref" ] || $bin fid-stats /usr/share/datasets/fashion-mnist --split test --features fmnist -o "$ref" 2>/dev/null
# shellcheck disable=SC2086
{
    $bin sample $student --n "$fd_n" --seed 11 --npz "$out/student_samples.npz"
    $bin sample $shipped --n "$fd_n" --seed 11 --npz "$out/shipped_samples.npz"
    [ "$teacher_fd" = measure ] && $bin sample $teacher --n "$fd_n" --steps 18 --seed 11 --npz "$out/teacher_samples.npz"
} 2>/dev/null
fd() {
    src=$1
    shift
    $bin fid --samples "$src" --ref "$ref" --features fmnist --n "$fd_n" "$@" 2>/dev/null | sed -n 's/^FD_fmnist \([0-9.]*\).*/\1/p'
}
{
    echo "FD_fmnist against the Fashion-MNIST test split (32x32), N = $fd_n samples each"
    echo "  training images (the floor at this N):   $(fd /usr/share/datasets/fashion-mnist --split train)"
    if [ "$teacher_fd" = measure ]; then
        echo "  teacher, Heun 18 steps (35 evaluations): $(fd "$out/teacher_samples.npz")"
    else
        echo "  teacher, Heun 18 steps (35 evaluations): $(sed -n 's/^teacher_fd: //p' models/fmnist32_record.txt) (recorded with the teacher, models/fmnist32_record.txt)"
    fi
    echo "  this run's one-step student ($student_steps steps): $(fd "$out/student_samples.npz")"
    echo "  the shipped one-step student:            $(fd "$out/shipped_samples.npz")"
    # Rates as sample printed them: the teacher's whole run (its shader compilation is a few
    # percent of it), the student's once compiled (compiling is most of a 64-image one-step run).
    t=$(sed -n '1s/.*, \([0-9.]*\) img\/s.*/\1/p' "$out/speed.txt")
    s=$(sed -n '3s/.* \([0-9.]*\) img\/s once compiled.*/\1/p' "$out/speed.txt")
    echo "speed, 64 images: teacher $t img/s at 35 evaluations, shipped student $s img/s at 1 once compiled: $(echo "$s $t" | awk '{printf "%.0f", $1 / $2}')x"
} | tee "$out/fd.txt"
echo "== outputs"
echo "  $out/side_by_side.png        teacher (35 evaluations) | this run's student | the shipped student"
echo "  $out/fd.txt                  FD_fmnist of each (N printed) and the one-step speed-up"
echo "  $out/gmm8d_sid/metrics.jsonl   the 8-D mixture: mode weights and energy distance per step"
echo "  $out/fmnist_sid/             this run's student: metrics.jsonl, samples/, report.html, student.safetensors"
