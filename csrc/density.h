/*
 * density.h -- closed-form densities and supports of bw_quantity (density.c).  Pure C, no
 * Python.h.
 *
 * The densities here are the ones with a closed form: Beta, Gamma, inverse Gamma and the
 * Student t of a normal-inverse-gamma mean.  The lognormal mean (BW_KIND_NIG_LNMEAN) and
 * products of two factors have none; they are left to quadrature elsewhere.
 */
#ifndef BW_DENSITY_H
#define BW_DENSITY_H

#include "bw_dist.h"

/* The density of q at x (0 outside the support; +inf where a Beta or Gamma density with a
 * shape below 1 is infinite at 0).  BW_OK; BW_E_DOMAIN for invalid parameters, NaN x, or a
 * quantity without a closed-form density (see bw_has_closed_pdf). */
int bw_closed_pdf(const bw_quantity *q, double x, double *out);

/* 1 if bw_closed_pdf has a closed form for q (one factor of a kind other than
 * BW_KIND_NIG_LNMEAN), else 0. */
int bw_has_closed_pdf(const bw_quantity *q);

/* The closure of the support of q: [lo, hi] (lo may be -inf, hi +inf).  The quantile at
 * level 0 is lo, at level 1 hi.  BW_OK or BW_E_DOMAIN for an unknown kind. */
int bw_support(const bw_quantity *q, double *lo, double *hi);

#endif /* BW_DENSITY_H */
