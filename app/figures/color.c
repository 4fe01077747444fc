/* The series palette and the heat maps' colormaps. */
#include <math.h>

#include "figures/plot.h"

mf_color mf_palette(int i)
{
    /* matplotlib's tab10: familiar from every paper's plots and distinct at
     * line widths of two pixels. */
    static const uint8_t colors[MF_PALETTE_SIZE][3] = {
        {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    };
    i %= MF_PALETTE_SIZE;
    const uint8_t *c = colors[i < 0 ? i + MF_PALETTE_SIZE : i];
    return (mf_color){c[0] / 255.0, c[1] / 255.0, c[2] / 255.0};
}

/* Degree-6 polynomial fits to matplotlib's viridis and inferno (Matt Zucker,
 * CC0), per channel, constant term first: within about 1/255 of the tables,
 * without 256-entry tables in the source. */
static const double viridis_fit[3][7] = {
    {0.2777273272234177, 0.1050930431085774, -0.3308618287255563, -4.634230498983486,
     6.228269936347081, 4.776384997670288, -5.435455855934631},
    {0.005407344544966578, 1.404613529898575, 0.214847559468213, -5.799100973351585,
     14.17993336680509, -13.74514537774601, 4.645852612178535},
    {0.3340998053353061, 1.384590162594685, 0.09509516302823659, -19.33244095627987,
     56.69055260068105, -65.35303263337234, 26.3124352495832},
};
static const double inferno_fit[3][7] = {
    {0.0002189403691192265, 0.1065134194856116, 11.60249308247187, -41.70399613139459,
     77.162935699427, -71.31942824499214, 25.13112622477341},
    {0.001651004631001012, 0.5639564367884091, -3.972853965665698, 17.43639888205313,
     -33.40235894210092, 32.62606426397723, -12.24266895238567},
    {-0.01948089843709184, 3.932712388889277, -15.9423941062914, 44.35414519872813,
     -81.80730925738993, 73.20951985803202, -23.07032500287172},
};

static uint8_t channel_from_fit(const double *c, double t)
{
    double v = c[6];
    for (int k = 5; k >= 0; k--) v = v * t + c[k];
    v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
    return (uint8_t)lrint(v * 255.0);
}

void mf_colormap_rgb(mf_colormap map, float t, uint8_t rgb[3])
{
    double u = isnan(t) ? 0.0 : t < 0.0f ? 0.0 : t > 1.0f ? 1.0 : (double)t;
    if (map == MF_COLORMAP_GREY) {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)lrint(u * 255.0);
        return;
    }
    const double(*fit)[7] = map == MF_COLORMAP_INFERNO ? inferno_fit : viridis_fit;
    for (int c = 0; c < 3; c++) rgb[c] = channel_from_fit(fit[c], u);
}
