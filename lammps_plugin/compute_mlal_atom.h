/* -*- c++ -*- ----------------------------------------------------------
   mlal: compute ID group mlal/atom

   Per-atom array, 3 columns: [1] gamma (extrapolation grade), [2] sigma
   (ensemble force spread, eV/A), [3] atomic-energy spread (eV).
   Global vector, 4 values: max gamma, max sigma (over the group), the
   ensemble spread of the total energy (eV), and how many force evaluations
   included gamma/sigma so far (a diagnostic).
   pair_style mlal evaluates the uncertainty only on steps where this compute
   will be invoked (thermo, dump, fix halt, variables...): other steps run at
   full speed. Invoked on any other step right after forces were computed
   (e.g. from Python after a run) it costs one extra model evaluation.
------------------------------------------------------------------------- */

#ifndef LMP_COMPUTE_MLAL_ATOM_H
#define LMP_COMPUTE_MLAL_ATOM_H

#include "compute.h"
#include "pair_mlal.h"

namespace LAMMPS_NS {

class ComputeMLALAtom : public Compute, public PairMLAL::Requester {
 public:
  ComputeMLALAtom(class LAMMPS *, int, char **);
  ~ComputeMLALAtom() override;
  void init() override;
  void compute_vector() override;
  void compute_peratom() override;
  double memory_usage() override;
  bool wants_uncertainty(bigint ntimestep) override { return matchstep(ntimestep) != 0; }

 private:
  int nmax;
  double **values;
  double vec[4];
  PairMLAL *current_pair();
};

}    // namespace LAMMPS_NS

#endif
