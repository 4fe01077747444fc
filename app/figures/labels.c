/* Point labels that never overlap: each is tried beside its point, then
 * farther out with a leader line, and kept only where it hits nothing
 * placed before it. */
#include <math.h>
#include <stdlib.h>

#include "figures/plot.h"

#define PI 3.14159265358979323846

int mf_rect_overlap(mf_rect a, mf_rect b)
{
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

static int rect_inside(mf_rect r, mf_rect area)
{
    return r.x >= area.x && r.y >= area.y && r.x + r.w <= area.x + area.w &&
           r.y + r.h <= area.y + area.h;
}

/* Free when inside area and clear of obstacles and of every label placed so
 * far (labels[0..placed_upto)). */
static int is_free(mf_rect r, mf_rect area, const mf_rect *obstacles, int obstacle_count,
                   const mf_point_label *labels, int placed_upto)
{
    if (!rect_inside(r, area)) return 0;
    for (int i = 0; i < obstacle_count; i++)
        if (mf_rect_overlap(r, obstacles[i])) return 0;
    for (int i = 0; i < placed_upto; i++)
        if (labels[i].placed && mf_rect_overlap(r, labels[i].box)) return 0;
    return 1;
}

void mf_place_labels(mf_point_label *labels, int n, mf_rect area, const mf_rect *obstacles,
                     int obstacle_count, double gap)
{
    for (int i = 0; i < n; i++) {
        mf_point_label *l = &labels[i];
        double px = l->px, py = l->py, w = l->w, h = l->h, d = gap * 0.75;
        l->placed = l->leader = 0;
        if (!isfinite(px) || !isfinite(py) || !(w > 0) || !(h > 0)) continue;
        /* Right and left first (a label reads as the point's name there),
         * then the diagonals, then above and below. */
        const mf_rect beside[8] = {
            {px + gap, py - h / 2, w, h},     {px - gap - w, py - h / 2, w, h},
            {px + d, py - d - h, w, h},       {px + d, py + d, w, h},
            {px - d - w, py - d - h, w, h},   {px - d - w, py + d, w, h},
            {px - w / 2, py - gap - h, w, h}, {px - w / 2, py + gap, w, h},
        };
        for (int k = 0; k < 8 && !l->placed; k++)
            if (is_free(beside[k], area, obstacles, obstacle_count, labels, i)) {
                l->box = beside[k];
                l->placed = 1;
            }
        /* Rings of growing radius, every 15 degrees, nearest to horizontal
         * first: the box's side that faces the point sits on the ring. */
        double reach = hypot(area.w, area.h), step = h * 0.9;
        for (double r = gap + step; !l->placed && r < reach; r += step)
            for (int k = 0; k < 26 && !l->placed; k++) {
                /* 0, +15, -15, +30, ... degrees from the right, then from the left */
                int j = (k / 2 + 1) / 2 * (k / 2 % 2 ? 1 : -1);
                double a = (k % 2 ? PI : 0.0) + (k % 2 ? -1 : 1) * j * (PI / 12.0);
                double cx = px + r * cos(a), cy = py + r * sin(a);
                mf_rect box = {cos(a) >= 0 ? cx : cx - w, cy - h / 2, w, h};
                if (is_free(box, area, obstacles, obstacle_count, labels, i)) {
                    l->box = box;
                    l->placed = l->leader = 1;
                }
            }
    }
}
