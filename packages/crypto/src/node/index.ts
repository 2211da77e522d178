export type {
  ReadSeedFileOptions,
  SeedFileOptions,
  SeedFileSystem,
  WriteSeedFileOptions,
} from './seed-file.ts';
export { readSeedFile, SEED_FILE_MODE, writeSeedFile } from './seed-file.ts';
