#!/bin/sh
# The main job: one-step distillation on the best Vulkan device present
# (lavapipe when there is no GPU). Installs what is missing, builds, then
#  1. distills the exact 2-D Gaussian-mixture teacher (8 modes) into a one-step
#     MLP generator with SiD and plots teacher vs one-step samples;
#  2. trains a class-conditional Fashion-MNIST teacher (EDM), then distills it
#     into a one-step generator with SiM (and, on a GPU, also with DMD2 and its
#     GAN head), writing the teacher's 35-evaluation grid and the students'
#     one-step grids from the same labels;
#  3. reports the Frechet distance of data, teacher and student in the feature
#     space of the shipped Fashion-MNIST classifier (FD_fmnist) against the test set.
# Everything lands in runs/main/. Re-running continues from the checkpoints.
# The budget fits ~10 minutes on lavapipe (16x16 images, few steps) and runs
# the 32x32 model far longer on a GPU.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
bin=build/vkdistill
out=runs/main
mkdir -p "$out"
$bin info | tee "$out/device.txt"
if grep -q '^device:.*(CPU)' "$out/device.txt"; then
    # lavapipe: 16x16 images, a small UNet, a few hundred images per second at best
    gmm_steps=600 teacher_cfg=samples/fmnist16_teacher.json teacher_dir=$out/teacher16 teacher_steps=200
    student_cfg=samples/fmnist16_sim.json student_steps=60 fd_n=500 res_flag="--resolution 16"
    dmd2_cfg=""
else
    gmm_steps=3000 teacher_cfg=samples/fmnist_teacher.json teacher_dir=$out/teacher teacher_steps=20000
    student_cfg=samples/fmnist_sim.json student_steps=3000 fd_n=10000 res_flag=""
    dmd2_cfg=samples/fmnist_dmd2.json
fi

echo "== 1. 2-D mixture of 8 Gaussians -> one-step MLP (SiD)"
$bin distill samples/gmm_ring8_sid.json --out "$out/gmm_sid" --steps "$gmm_steps" --resume auto
tail -n 1 "$out/gmm_sid/metrics.jsonl"

echo "== 2. Fashion-MNIST teacher ($teacher_cfg, $teacher_steps steps)"
$bin train-teacher "$teacher_cfg" --out "$teacher_dir" --steps "$teacher_steps" --resume auto

echo "== 3. one-step student ($student_cfg, $student_steps steps)"
$bin distill "$student_cfg" --out "$out/student" --steps "$student_steps" --resume auto
if [ -n "$dmd2_cfg" ]; then
    echo "== 3b. one-step student ($dmd2_cfg: DMD2 with its GAN head, $student_steps steps)"
    $bin distill "$dmd2_cfg" --out "$out/student_dmd2" --steps "$student_steps" --resume auto
    $bin sample --model "$out/student_dmd2/student.json" --weights "$out/student_dmd2/student.safetensors" \
        --n "$fd_n" --one-step 80 --seed 7 -o "$out/student_dmd2_1nfe.png" --npz "$out/student_dmd2_samples.npz"
fi

echo "== 4. Frechet distances in Fashion-MNIST classifier features (FD_fmnist, not Inception FID)"
# The reference: the test split, prepared like the samples (resized to 16x16 on lavapipe).
ref=$out/fd_ref_fmnist_test.npz
[ -f "$ref" ] || $bin fid-stats /usr/share/datasets/fashion-mnist --split test --features fmnist $res_flag -o "$ref"
$bin sample --model "$teacher_dir/teacher.json" --weights "$teacher_dir/teacher.safetensors" --n "$fd_n" \
    --steps 18 --seed 7 -o "$out/teacher_35nfe.png" --npz "$out/teacher_samples.npz"
$bin sample --model "$out/student/student.json" --weights "$out/student/student.safetensors" --n "$fd_n" \
    --one-step 2.5 --seed 7 -o "$out/student_1nfe.png" --npz "$out/student_samples.npz"
{
    echo "data (train split, same N):"
    $bin fid --samples /usr/share/datasets/fashion-mnist --split train --n "$fd_n" --ref "$ref" --features fmnist $res_flag
    echo "teacher, 35 network evaluations:"
    $bin fid --samples "$out/teacher_samples.npz" --ref "$ref" --features fmnist
    echo "one-step student:"
    $bin fid --samples "$out/student_samples.npz" --ref "$ref" --features fmnist
    if [ -n "$dmd2_cfg" ]; then
        echo "one-step DMD2 + GAN student:"
        $bin fid --samples "$out/student_dmd2_samples.npz" --ref "$ref" --features fmnist
    fi
} 2>/dev/null | tee "$out/fd.txt"
echo "== outputs"
echo "  $out/fd.txt                          FD_fmnist of data, teacher and student (N samples each)"
echo "  $out/teacher_35nfe.png, student_1nfe.png   the samples those numbers were measured on"
echo "  $out/gmm_sid/samples/          teacher (blue) vs one-step (orange) scatter plots"
echo "  $out/student/samples/teacher.png   the teacher, 18 Heun steps (35 network evaluations)"
echo "  $out/student/samples/step_*.png    the one-step student, same labels"
echo "  */metrics.jsonl                    losses, grad norms, mode weights, distances"
