// A lane group's exchange (matmul.comp, conv2d.comp): every lane of a group of L reads lane c
// of its own group, c the same in all of them (a k step's A, a tile's Winograd factors). The
// including shader declares L and the constant XB, and requires the subgroup shuffle and
// ballot extensions.
//   XB = 0: one shuffle. llvmpipe of Mesa 22.3 makes it a permute of the register.
//   XB = 1: a broadcast a group of the subgroup, then the group's own picked. llvmpipe of Mesa 25
//           makes a shuffle of other than 8 lanes a loop over the lanes (~160 instructions at
//           16), a broadcast an extract: the host chooses XB by driver (src/vk/context.c).
// Both read the same value: the bits do not depend on XB.
float grp_lane(float v, uint gbase, uint c) {
    if (XB == 0u) return subgroupShuffle(v, gbase + c);
    float r = subgroupBroadcast(v, c);
    [[unroll]] for (uint gi = 1u; gi < 8u; gi++)
        if (gi * L < gl_SubgroupSize) r = gbase == gi * L ? subgroupBroadcast(v, gi * L + c) : r;
    return r;
}
