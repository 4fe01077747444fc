/* Mini-batches: augmentation, normalization and the epoch shuffle. Each
 * sample's random choices come from its own generator, seeded from
 * (aug_seed, position in the batch), so any thread count gives the same bits. */
#include "minformer/data.h"

#include <string.h>

enum { SHIFT_MAX = 2, CROP_PAD = 4 };

/* One normalized sample: out[c][y][x] = lut[c][src[c][y + oy][x' + ox]] with
 * x' = flip ? S-1-x : x, and raw pixel 0 (lut[c][0]) outside the image. */
static void sample_fill(const uint8_t *src, int C, int S, int oy, int ox, int flip,
                        const float (*lut)[256], float *out)
{
    size_t plane = (size_t)S * S;
    for (int c = 0; c < C; c++) {
        const uint8_t *in = src + c * plane;
        const float *l = lut[c];
        float *o = out + c * plane;
        for (int y = 0; y < S; y++) {
            int sy = y + oy;
            float *row = o + (size_t)y * S;
            if (sy < 0 || sy >= S) {
                for (int x = 0; x < S; x++) row[x] = l[0];
                continue;
            }
            const uint8_t *srow = in + (size_t)sy * S;
            for (int x = 0; x < S; x++) {
                int sx = (flip ? S - 1 - x : x) + ox;
                row[x] = (sx >= 0 && sx < S) ? l[srow[sx]] : l[0];
            }
        }
    }
}

void mf_batch_fill(const mf_split *split, const int *indices, int B, const float *mean,
                   const float *std, mf_augment augment, uint64_t aug_seed, float *x, int *y)
{
    const int C = split->channels, S = split->size;
    const size_t sample = (size_t)C * S * S;
    /* (p/255 - mean[c]) / std[c] for every byte value: 3 KiB on the stack. */
    float lut[3][256];
    for (int c = 0; c < C && c < 3; c++)
        for (int p = 0; p < 256; p++) lut[c][p] = ((float)p / 255.0f - mean[c]) / std[c];

#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int b = 0; b < B; b++) {
        int idx = indices[b];
        int oy = 0, ox = 0, flip = 0;
        if (augment != MF_AUGMENT_NONE) {
            mf_rng rng;
            mf_rng_seed(&rng, mf_hash2(aug_seed, (uint64_t)b));
            if (augment == MF_AUGMENT_SHIFT) {
                oy = (int)mf_rng_below(&rng, 2 * SHIFT_MAX + 1) - SHIFT_MAX;
                ox = (int)mf_rng_below(&rng, 2 * SHIFT_MAX + 1) - SHIFT_MAX;
            } else if (augment == MF_AUGMENT_CROP_FLIP) {
                /* Crop offset in the padded image, 0..2*pad, relative to the original. */
                oy = (int)mf_rng_below(&rng, 2 * CROP_PAD + 1) - CROP_PAD;
                ox = (int)mf_rng_below(&rng, 2 * CROP_PAD + 1) - CROP_PAD;
                flip = (int)mf_rng_below(&rng, 2);
            }
        }
        sample_fill(split->images + (size_t)idx * sample, C, S, oy, ox, flip,
                    (const float (*)[256])lut, x + (size_t)b * sample);
        y[b] = split->labels[idx];
    }
}

void mf_shuffle(int *perm, int n, uint64_t seed)
{
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)mf_rng_below(&rng, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
