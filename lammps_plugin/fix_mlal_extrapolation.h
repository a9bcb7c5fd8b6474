/* -*- c++ -*- ----------------------------------------------------------
   mlal: fix mlal/extrapolation (syntax: fix_mlal_extrapolation.cpp)
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
  double last_gamma, last_sigma, max_gamma, max_sigma;    // max_*: since the run started
  bigint last_check, last_written;
  int nwritten, stopped;

  PairMLAL *current_pair();
  void check();
  void write_frame(PairMLAL *, double gmax, double smax);
};

}    // namespace LAMMPS_NS

#endif
