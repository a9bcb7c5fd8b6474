/* ----------------------------------------------------------------------
   mlal: pair_style mlal, restart part (pair_mlal.h; pair_mlal.cpp has the
   rest). Restart files hold the settings, the model path and the element map.
------------------------------------------------------------------------- */

#include "pair_mlal.h"

#include "atom.h"
#include "comm.h"
#include "error.h"

#include <cstdio>
#include <filesystem>
#include <mpi.h>
#include <string>
#include <vector>

using namespace LAMMPS_NS;

/* restart: settings, model path and element map; the model is re-read from its path */

void PairMLAL::write_restart_settings(FILE *fp)
{
  fwrite(&nthreads, sizeof(int), 1, fp);
  fwrite(&unc_mode, sizeof(int), 1, fp);
}

void PairMLAL::read_restart_settings(FILE *fp)
{
  if (comm->me == 0) {
    utils::sfread(FLERR, &nthreads, sizeof(int), 1, fp, nullptr, error);
    utils::sfread(FLERR, &unc_mode, sizeof(int), 1, fp, nullptr, error);
  }
  MPI_Bcast(&nthreads, 1, MPI_INT, 0, world);
  MPI_Bcast(&unc_mode, 1, MPI_INT, 0, world);
}

static void write_string(FILE *fp, const std::string &s)
{
  int n = (int) s.size();
  fwrite(&n, sizeof(int), 1, fp);
  fwrite(s.data(), 1, n, fp);
}

static std::string read_string(LAMMPS *lmp, FILE *fp, MPI_Comm world, int me)
{
  int n = 0;
  if (me == 0) utils::sfread(FLERR, &n, sizeof(int), 1, fp, nullptr, lmp->error);
  MPI_Bcast(&n, 1, MPI_INT, 0, world);
  std::string s(n, '\0');
  if (me == 0 && n > 0) utils::sfread(FLERR, &s[0], 1, n, fp, nullptr, lmp->error);
  if (n > 0) MPI_Bcast(&s[0], n, MPI_CHAR, 0, world);
  return s;
}

void PairMLAL::write_restart(FILE *fp)
{
  write_restart_settings(fp);
  // absolute path: the restart may be read from another working directory
  std::string path;
  if (model_loaded) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(mdl.path(), ec);
    path = ec ? mdl.path() : abs.string();
  }
  write_string(fp, path);
  for (int t = 1; t <= atom->ntypes; t++) write_string(fp, type_element[t]);
}

void PairMLAL::read_restart(FILE *fp)
{
  read_restart_settings(fp);
  allocate();
  std::string path = read_string(lmp, fp, world, comm->me);
  std::vector<std::string> elements(atom->ntypes + 1, "NULL");
  for (int t = 1; t <= atom->ntypes; t++) elements[t] = read_string(lmp, fp, world, comm->me);
  mlal::MlalModel::set_num_threads(nthreads);
  int exists = 0;
  if (comm->me == 0 && !path.empty()) {
    FILE *mf = fopen(path.c_str(), "rb");
    if (mf) {
      exists = 1;
      fclose(mf);
    }
  }
  MPI_Bcast(&exists, 1, MPI_INT, 0, world);
  if (exists) {
    load_model(path, elements);
  } else {
    // keep the element map so init reaches init_style() and its clear message
    restart_missing = path.empty() ? std::string("(none)") : path;
    for (int t = 1; t <= atom->ntypes; t++) type_element[t] = elements[t];
    for (int i = 1; i <= atom->ntypes; i++)
      for (int j = 1; j <= atom->ntypes; j++)
        setflag[i][j] = (elements[i] != "NULL" && elements[j] != "NULL") ? 1 : 0;
    if (comm->me == 0)
      error->warning(FLERR, "pair_style mlal: model file '{}' named in the restart file is not "
                     "there; give pair_coeff * * model.pt ... before the next run", path);
  }
}
