/* -*- c++ -*- ----------------------------------------------------------
   mlal: on-the-fly extrapolation control for active learning.

   fix ID group mlal/extrapolation N [select G1] [break G2]
                                     [sigma_select S1] [sigma_break S2] [file F]

   Every N steps (and at setup; every N iterations in minimize) pair_style
   mlal evaluates gamma and sigma. If max gamma > G1 (or max sigma > S1, eV/A)
   over the group, the whole cell is appended to file F as one extended-XYZ
   frame (readable by ase.io.read). If max gamma > G2 (or max sigma > S2) the
   run or minimization stops after the current step, like fix halt with
   'error continue': a following run command works normally.
   Global scalar: last max gamma. Global vector (5): last max gamma, last max
   sigma, frames written so far, 1 if this run was stopped by 'break', step of
   the last check.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_MLAL_EXTRAPOLATION_H
#define LMP_FIX_MLAL_EXTRAPOLATION_H

#include "fix.h"
#include "pair_mlal.h"

#include <string>

namespace LAMMPS_NS {

class FixMLALExtrapolation : public Fix, public PairMLAL::Requester {
 public:
  FixMLALExtrapolation(class LAMMPS *, int, char **);
  int setmask() override;
  void init() override;
  void setup(int) override;
  void min_setup(int) override;
  void end_of_step() override;
  void min_post_force(int) override;
  void post_run() override;
  double compute_scalar() override;
  double compute_vector(int) override;
  bool wants_uncertainty(bigint ntimestep) override { return ntimestep % nevery == 0; }

 private:
  double gamma_select, gamma_break, sigma_select, sigma_break;    // < 0: off
  std::string filename;
  double last_gamma, last_sigma;
  bigint last_check, last_written;
  int nwritten, stopped;

  PairMLAL *current_pair();
  void check();
  void write_frame(PairMLAL *, double gmax, double smax);
};

}    // namespace LAMMPS_NS

#endif
